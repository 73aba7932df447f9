#!/usr/bin/env bash
# Put ONNX Runtime's shared library where cpp/CMakeLists.txt looks for it (.cache/onnxruntime/lib, gitignored),
# taken from the onnxruntime wheel on PyPI: the one installed in PYTHON's environment when there is one (so the
# C++ library runs the same ONNX Runtime as the Python runtime it is compared with), else the wheel of
# ORT_VERSION downloaded with pip. The C API headers are vendored in cpp/third_party/onnxruntime.
#   bash cpp/fetch-onnxruntime.sh [PYTHON]       # PYTHON defaults to .venv/bin/python, then python3
set -euo pipefail
PYTHON="${1:-}"
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac  # before cd
cd "$(dirname "$0")/.."
[ -z "$PYTHON" ] && { [ -x .venv/bin/python ] && PYTHON="$PWD/.venv/bin/python" || PYTHON=python3; }
DEST=.cache/onnxruntime
mkdir -p "$DEST/lib"
capi="$("$PYTHON" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null || true)"
lib=""
[ -n "$capi" ] && lib="$(find "$capi" -maxdepth 1 -name 'libonnxruntime.so.*' | sort | tail -n 1)"
if [ -z "$lib" ]; then
    version="${ORT_VERSION:-1.32.0}"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "onnxruntime==$version"
    (cd "$work" && "$PYTHON" -m zipfile -e onnxruntime-*.whl unpacked)
    lib="$(find "$work/unpacked/onnxruntime/capi" -maxdepth 1 -name 'libonnxruntime.so.*' | sort | tail -n 1)"
    [ -n "$lib" ] || { echo "fetch-onnxruntime: the onnxruntime $version wheel has no libonnxruntime.so" >&2; exit 1; }
fi
name="$(basename "$lib")"
if ! cmp -s "$lib" "$DEST/lib/$name"; then
    cp "$lib" "$DEST/lib/$name.tmp" && mv "$DEST/lib/$name.tmp" "$DEST/lib/$name"
fi
ln -sfn "$name" "$DEST/lib/libonnxruntime.so.1"
ln -sfn "$name" "$DEST/lib/libonnxruntime.so"
echo "$DEST/lib/$name"
