#!/usr/bin/env bash
# Take an on-device build bundle (from `trt-edge build` on a machine without TensorRT) to a plan, its
# manifest and a profile in each requested power mode. Run on the Jetson, after jetson/setup.sh:
#   bash jetson/build_and_profile.sh BUNDLE_DIR OUT_DIR [MODE ...]
# MODE is an nvpmodel mode NAME (MAXN, MODE_30W, 25W, ...): IDs differ between modules, names do not.
# Without modes, the current mode is profiled. Changing modes needs sudo; the original mode is restored.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BUNDLE_DIR OUT_DIR [MODE ...]" >&2
    exit 2
fi
bundle=$1; out=$2; shift 2
[ -d "$bundle" ] || { echo "$0: no such bundle folder: $bundle" >&2; exit 2; }
if ! command -v trt-edge >/dev/null 2>&1; then
    echo "$0: trt-edge not found: run jetson/setup.sh first (JetPack 6/7; on JetPack 5, Python 3.8, run the" \
        "bundle's own build_on_device.sh instead)" >&2
    exit 2
fi
mkdir -p "$out"

mode_id() {  # nvpmodel mode name -> id, from `nvpmodel -p --verbose` ("POWER_MODEL: ID=0 NAME=MAXN")
    sudo nvpmodel -p --verbose 2>/dev/null | sed -n "s/.*POWER_MODEL: ID=\([0-9]*\) NAME=$1\$/\1/p" | head -n 1
}
current_mode() { sudo nvpmodel -q 2>/dev/null | sed -n 's/^NV Power Mode: //p'; }

original=""
if command -v nvpmodel >/dev/null 2>&1; then original=$(current_mode || true); fi
restore() {
    if [ -n "$original" ]; then
        id=$(mode_id "$original"); [ -n "$id" ] && sudo nvpmodel -m "$id" >/dev/null || true
    fi
}
trap restore EXIT

# 1. Build once: the plan does not depend on the power mode.
trt-edge build --onnx "$bundle" --out "$out/build"
plan_dir="$out/build"

# 2. Profile in each mode (clocks pinned with jetson_clocks so runs are comparable).
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=("${original:-current}")
for mode in "${modes[@]}"; do
    if [ "$mode" != "current" ] && command -v nvpmodel >/dev/null 2>&1; then
        id=$(mode_id "$mode")
        if [ -z "$id" ]; then echo "$0: this module has no power mode named $mode" >&2; exit 2; fi
        sudo nvpmodel -m "$id"
        sleep 2
    fi
    command -v jetson_clocks >/dev/null 2>&1 && sudo jetson_clocks || true
    trt-edge profile --engine "$plan_dir" --out "$out/profile-$mode"
done
echo "profiles: $out/profile-*/profile.html"
