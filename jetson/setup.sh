#!/usr/bin/env bash
# Install trt-edge on a Jetson against JetPack's own TensorRT and an NVIDIA torch wheel, and build the
# attention plugin for this device's SM. Run from the repository root: bash jetson/setup.sh
# Options (environment): VENV=.venv-jetson  TORCH_INDEX=<NVIDIA Jetson wheel index>  SKIP_TORCH=1
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /etc/nv_tegra_release ]; then
    echo "setup.sh: this is not a Jetson (no /etc/nv_tegra_release); use the README Quickstart instead" >&2
    exit 2
fi
release=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' /etc/nv_tegra_release)
echo "L4T ${release}"

# TensorRT's Python bindings come from JetPack (apt: python3-libnvinfer) for the system Python, so the
# virtual environment must see system site-packages.
python3 -c "import tensorrt" 2>/dev/null || {
    echo "setup.sh: TensorRT's Python bindings are missing: sudo apt-get install python3-libnvinfer python3-libnvinfer-dev" >&2
    exit 2
}
# trt-edge needs Python >= 3.10 (JetPack 6 ships 3.10, JetPack 7 3.12). JetPack 5's python3 is 3.8: there a
# bundle's build_on_device.sh (trtexec, then a standard-library manifest writer) builds the engine instead.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "setup.sh: trt-edge needs Python >= 3.10, this python3 is $(python3 -c 'import platform; print(platform.python_version())') (JetPack 5):" \
        "copy a bundle written by \`trt-edge build\` over and run its build_on_device.sh (trtexec); see docs/engine.md" >&2
    exit 2
fi
VENV=${VENV:-.venv-jetson}
python3 -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --upgrade pip

case "$release" in
    35.*) default_index=https://pypi.jetson-ai-lab.io/jp5/cu114 ;;
    36.*) default_index=https://pypi.jetson-ai-lab.io/jp6/cu126 ;;
    *)    default_index=https://pypi.jetson-ai-lab.io/jp7/cu130 ;;
esac
if [ -z "${SKIP_TORCH:-}" ] && ! python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    # Never take torch from PyPI here: its aarch64 wheels have no Jetson CUDA.
    python -m pip install --extra-index-url "${TORCH_INDEX:-$default_index}" torch
fi
# torch is already satisfied, so this keeps NVIDIA's wheel.
python -m pip install -e ".[trt]"
python - <<'PY'
import tensorrt, torch
print("tensorrt", tensorrt.__version__, "| torch", torch.__version__, "| cuda", torch.cuda.is_available())
PY

# The plugin needs CMake 3.18+; JetPack 5's Ubuntu 20.04 ships 3.16, so take PyPI's into the venv then.
if ! cmake --version 2>/dev/null | awk 'NR==1 {split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 18))}'; then
    python -m pip install "cmake>=3.18"
fi
# The TensorRT found here picks the plugin generation: IPluginV2DynamicExt on 8.5/8.6, IPluginV3 on 10+.
cmake -S plugins/fused_attention -B build/plugins -DCMAKE_BUILD_TYPE=Release
cmake --build build/plugins -j"$(nproc)"
grep plugin_generation build/plugins/trt_edge_build_info.txt
echo "plugin built in build/plugins; export TRT_EDGE_PLUGIN_LIB=$PWD/build/plugins/libtrt_edge_attention_plugin.so"
echo "done: . $VENV/bin/activate && trt-edge --help"
