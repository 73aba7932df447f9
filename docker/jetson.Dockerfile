# trt-edge on a Jetson: NVIDIA's L4T JetPack base (CUDA, cuDNN, TensorRT and its Python bindings).
# Default: JetPack 6.1/6.2 (L4T R36.4, TensorRT 10.3). Other releases: --build-arg L4T_TAG=r35.4.1 (JetPack 5.1.2,
# TensorRT 8.5) or r38.2.0 (JetPack 7, Thor), with a matching TORCH_INDEX.
#   docker build -f docker/jetson.Dockerfile -t trt-edge:jetson .
#   docker run --rm -it --runtime nvidia --network host -v "$PWD/runs:/work/runs" trt-edge:jetson \
#       trt-edge build --onnx runs/demo/calibrate --out runs/demo/engine
ARG L4T_TAG=r36.4.0
FROM nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}

# NVIDIA's PyTorch wheels for Jetson (CUDA-enabled aarch64 builds); PyPI's aarch64 torch has no Jetson CUDA.
ARG TORCH_INDEX=https://pypi.jetson-ai-lab.io/jp6/cu126
ARG TORCH_VERSION=2.5.0

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip python3-venv cmake build-essential git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /work
# Torch first, from NVIDIA's index. The kit's own requirement (torch>=2.1) is then already satisfied, so
# installing the kit never replaces this wheel.
RUN python3 -m pip install --extra-index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY trt_edge ./trt_edge
COPY plugins ./plugins
COPY configs ./configs
COPY jetson ./jetson
RUN python3 -m pip install . "cuda-python>=12" \
    && python3 -c "import torch, tensorrt; print('torch', torch.__version__, 'tensorrt', tensorrt.__version__)"
# Build the attention plugin for this device's SM against JetPack's TensorRT.
RUN cmake -S plugins/fused_attention -B build/plugins -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build/plugins -j"$(nproc)"
ENV TRT_EDGE_PLUGIN_DIR=/work/build/plugins
CMD ["trt-edge", "--help"]
