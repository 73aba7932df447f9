"""The fused-attention CUDA sources compile for every CI target with warnings as errors, and the C ABI
rejects bad input with the documented status codes.

One nvcc call builds a shared library for sm_87 (Orin), sm_90 and sm_110 (Thor) — whichever of these the
toolkit knows — plus sm_72 (Xavier) when the toolkit still supports it (CUDA < 13; CUDA 13 starts at
compute_75, so Xavier is built on the device). No GPU is needed: the argument checks run before any
CUDA call, so the library is loaded and its error paths exercised on this machine.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from trt_edge.plugins.library import ABI_VERSION, bind_kernel_abi, source_dir

WANTED_ARCHS = ("72", "87", "90", "110")
TENSORRT_INCLUDE_DIRS = ("/usr/include/aarch64-linux-gnu", "/usr/include/x86_64-linux-gnu", "/usr/include",
                         "/usr/local/TensorRT/include")


def _nvcc() -> str | None:
    return shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists()
                                    else None)


def _known_archs(nvcc: str) -> set[str]:
    out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=False).stdout
    return {line.strip().removeprefix("compute_") for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def kernel_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc (CUDA toolkit) not found: the kernel compile check needs it")
    archs = [a for a in WANTED_ARCHS if a in _known_archs(nvcc)]
    out = tmp_path_factory.mktemp("fused-attention") / "libtrt_edge_attention.so"
    src = source_dir()
    command = [nvcc, "-std=c++17", "-O3", "-shared", "-Xcompiler=-fPIC,-Wall,-Wextra,-Werror",
               "-Werror", "all-warnings", "-I", str(src)]
    for arch in archs:
        command += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    command += [str(src / "fused_attention.cu"), "-o", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    return {"archs": archs, "proc": proc, "path": out, "seconds": time.perf_counter() - start,
            "command": command}


def test_kernel_compiles_without_warnings_for_ci_sms(kernel_build: dict[str, object]) -> None:
    proc = kernel_build["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archs = kernel_build["archs"]
    assert isinstance(archs, list)
    assert {"87", "90"} <= set(archs), f"toolkit lacks a CI target: {archs}"
    # The fat binary carries SASS for every requested SM (checked where the toolkit ships cuobjdump).
    cuobjdump = shutil.which("cuobjdump")
    if cuobjdump is not None:
        listing = subprocess.run([cuobjdump, "--list-elf", str(kernel_build["path"])], capture_output=True,
                                 text=True, check=False).stdout
        for arch in archs:
            assert f"sm_{arch}" in listing, listing


def test_c_abi_reports_bad_input(kernel_build: dict[str, object]) -> None:
    proc = kernel_build["proc"]
    assert isinstance(proc, subprocess.CompletedProcess) and proc.returncode == 0
    lib = bind_kernel_abi(ctypes.CDLL(str(kernel_build["path"])))
    assert lib.trt_edge_attention_abi_version() == ABI_VERSION == 2
    assert lib.trt_edge_attention_max_seq_len() >= 1024
    assert [lib.trt_edge_attention_supports_head_size(h) for h in (16, 32, 64, 96, 128, 256)] == [0, 1, 1, 0, 1, 0]
    check = lib.trt_edge_attention_check
    assert check(2, 128, 12, 64, 2, 128) == 0
    assert check(1, 1024, 12, 32, 1, 1024) == 0
    assert check(2, 128, 12, 48, 2, 128) == 1                      # head size
    assert check(2, 0, 12, 64, 2, 0) == 2                          # empty sequence
    too_long = lib.trt_edge_attention_max_seq_len() + 1
    assert check(1, too_long, 12, 64, 1, too_long) == 2            # beyond the limit
    assert check(2, 128, 12, 64, 1, 128) == 3                      # mask batch
    assert check(2, 128, 12, 64, 2, 127) == 3                      # mask length
    assert check(0, 128, 12, 64, 0, 128) == 4                      # batch
    assert b"head size" in lib.trt_edge_attention_status_string(1)
    # forward() validates before touching CUDA: bad shapes and NULL pointers come back as codes.
    fwd = lib.trt_edge_attention_forward
    fake = ctypes.c_void_p(256)  # never dereferenced: every call below fails validation first
    assert fwd(fake, fake, fake, fake, fake, 2, 128, 12, 40, 2, 128, 0.125, 0, None) == 1
    assert fwd(fake, fake, fake, fake, fake, 2, 128, 12, 64, 2, 64, 0.125, 0, None) == 3
    assert fwd(None, fake, fake, None, fake, 2, 128, 12, 64, 0, 0, 0.125, 0, None) == 4
    assert fwd(ctypes.c_void_p(258), fake, fake, None, fake, 2, 128, 12, 64, 0, 0, 0.125, 0, None) == 4


def test_c_abi_checks_the_additive_bias(kernel_build: dict[str, object]) -> None:
    """ABI 2: bias [1 or batch, heads, seq, seq]; all-zero bias dims mean no bias; NULL mask = no padding."""
    proc = kernel_build["proc"]
    assert isinstance(proc, subprocess.CompletedProcess) and proc.returncode == 0
    lib = bind_kernel_abi(ctypes.CDLL(str(kernel_build["path"])))
    check = lib.trt_edge_attention_check_bias
    assert check(2, 128, 12, 64, 2, 128, 0, 0, 0, 0) == 0          # no bias
    assert check(2, 128, 12, 64, 2, 128, 1, 12, 128, 128) == 0     # one bias for every batch row
    assert check(2, 128, 12, 64, 2, 128, 2, 12, 128, 128) == 0     # one per batch row
    assert check(4, 128, 12, 64, 4, 128, 2, 12, 128, 128) == 6     # bias batch neither 1 nor batch
    assert check(2, 128, 12, 64, 2, 128, 1, 6, 128, 128) == 6      # heads
    assert check(2, 128, 12, 64, 2, 128, 1, 12, 128, 64) == 6      # key length
    assert check(2, 128, 12, 64, 2, 128, 1, 12, 64, 128) == 6      # query length
    assert check(2, 128, 12, 48, 2, 128, 1, 12, 128, 128) == 1     # head size is still checked first
    assert b"bias" in lib.trt_edge_attention_status_string(6)
    fwd = lib.trt_edge_attention_forward_bias
    fake = ctypes.c_void_p(256)  # never dereferenced: every call below fails validation first
    # q, k, v, mask, bias, out, batch, seq, heads, head, mask_batch, mask_len, bias_batch, scale, causal, stream
    assert fwd(fake, fake, fake, None, fake, fake, 4, 64, 2, 64, 0, 0, 3, 0.125, 0, None) == 6
    assert fwd(fake, fake, fake, fake, fake, fake, 2, 64, 2, 64, 2, 32, 1, 0.125, 0, None) == 3
    assert fwd(fake, fake, fake, None, ctypes.c_void_p(257), fake, 2, 64, 2, 64, 0, 0, 1, 0.125, 0, None) == 4
    assert fwd(None, fake, fake, None, None, fake, 2, 64, 2, 64, 0, 0, 7, 0.125, 0, None) == 4  # NULL bias: ignored


def test_cmake_configures_kernel_only_without_tensorrt(tmp_path: Path) -> None:
    nvcc = _nvcc()
    if nvcc is None or shutil.which("cmake") is None:
        pytest.skip("cmake and nvcc are needed to configure the plugin build")
    env = dict(os.environ, CUDACXX=nvcc)
    proc = subprocess.run(["cmake", "-S", str(source_dir()), "-B", str(tmp_path)], capture_output=True, text=True,
                          check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = dict(line.split("=", 1) for line in (tmp_path / "trt_edge_build_info.txt").read_text().splitlines())
    has_trt = any(Path(d, "NvInferRuntime.h").is_file() for d in TENSORRT_INCLUDE_DIRS)
    if has_trt:
        assert info["plugin_built"] == "ON"
    else:
        assert info["plugin_built"] == "OFF"
        assert "plugin target trt_edge_attention_plugin SKIPPED" in proc.stdout
    archs = info["cuda_architectures"].split(";")
    if int(info["cuda_version"].split(".")[0]) >= 13:
        assert archs == ["87", "90", "110"]  # no sm_72 with CUDA 13
    else:
        assert "72" in archs and "87" in archs


def _tensorrt_include_dirs() -> list[Path]:
    """System TensorRT installs, then the public header sets CI keeps next to the checkout (../shared)."""
    found = [Path(d) for d in TENSORRT_INCLUDE_DIRS if Path(d, "NvInferRuntime.h").is_file()]
    shared = source_dir().parents[2] / "shared" / "third_party" / "tensorrt-headers"
    if shared.is_dir():
        found += sorted(p / "include" for p in shared.iterdir() if (p / "include" / "NvInferRuntime.h").is_file())
    return found


PLUGIN_SOURCES = ("FusedAttentionCommon.cpp", "FusedAttentionPlugin.cpp", "FusedAttentionPluginV2.cpp",
                  "FusedAttentionRegistration.cpp")


def test_plugin_source_compiles_against_tensorrt_headers() -> None:
    """Both plugin generations and the registration, against every TensorRT header set found (system or
    ../shared/third_party/tensorrt-headers); .ci/cxx-check also covers the C++ example and CMake."""
    includes = _tensorrt_include_dirs()
    if not includes:
        pytest.skip("TensorRT headers not installed and ../shared/third_party/tensorrt-headers absent: the "
                    "plugin sources are compiled on the device (no mock header stands in for TensorRT)")
    cuda_include = next((d for d in ("/usr/local/cuda/include", "/usr/include")
                         if Path(d, "cuda_runtime_api.h").is_file()), None)
    if cuda_include is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found: TensorRT's headers include them")
    for include in includes:
        for name in PLUGIN_SOURCES:
            proc = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                                   "-isystem", str(include), "-isystem", cuda_include, "-I", str(source_dir()),
                                   str(source_dir() / name)], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{name} against {include}:\n{proc.stderr}"


def test_plugin_logic_runs_against_tensorrt_headers(kernel_build: dict[str, object], tmp_path: Path) -> None:
    """plugin_selftest.cpp exercises both generations' CPU-side logic (attributes as the ONNX parser passes
    them, has_mask/has_bias layouts, formats, V2 serialization, V3 plan fields, shape refusals before any CUDA
    call), linked against the kernel library only: TensorRT's interfaces are header-only, libnvinfer is
    not needed, and nothing here stands in for TensorRT."""
    proc = kernel_build["proc"]
    assert isinstance(proc, subprocess.CompletedProcess) and proc.returncode == 0
    includes = _tensorrt_include_dirs()
    if not includes:
        pytest.skip("TensorRT headers not installed and ../shared/third_party/tensorrt-headers absent")
    cuda_include = next((d for d in ("/usr/local/cuda/include", "/usr/include")
                         if Path(d, "cuda_runtime_api.h").is_file()), None)
    if cuda_include is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found: TensorRT's headers include them")
    library = Path(str(kernel_build["path"]))
    src = source_dir()
    for include in includes:
        exe = tmp_path / f"selftest-{include.parent.name}"
        build = subprocess.run(
            ["g++", "-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror", "-isystem", str(include), "-isystem",
             cuda_include, "-I", str(src), str(Path(__file__).with_name("plugin_selftest.cpp")),
             *(str(src / n) for n in ("FusedAttentionCommon.cpp", "FusedAttentionPlugin.cpp",
                                      "FusedAttentionPluginV2.cpp")),
             str(library), f"-Wl,-rpath,{library.parent}", "-o", str(exe)],
            capture_output=True, text=True, check=False)
        assert build.returncode == 0, f"against {include}:\n{build.stderr}"
        run = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=60)
        assert run.returncode == 0, f"against {include}:\n{run.stdout}{run.stderr}"
        assert "all checks passed" in run.stdout
