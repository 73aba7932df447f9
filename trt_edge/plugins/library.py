"""Locate, build and load the fused-attention libraries; hash them for the plan manifest.

Two shared libraries come out of `plugins/fused_attention/` (CMake):

- `libtrt_edge_attention_plugin.so`: the TensorRT plugin (kernel + C ABI + IPluginV3), registering its
  creator when loaded with `load_plugin_library` (ctypes). Load it before parsing an ONNX model that
  holds `TrtEdgeFusedAttention` nodes and before deserializing a plan built from one; its sha256 goes
  into the manifest so a plan is never run with a different plugin build.
- `libtrt_edge_attention_plugin_registry.so`: the same plugin without load-time registration, for
  `IPluginRegistry.load_library`, `trtexec --dynamicPlugins` and `plugins_to_serialize` (TensorRT rejects
  a creator registered twice, so a process loads one variant or the other, never both).
- `libtrt_edge_attention.so`: the kernel and its C ABI only (`trt_edge_attention_forward`), built even
  without TensorRT; the GPU benchmark and the C-ABI tests use it.

Search order for each: the environment variable (`TRT_EDGE_PLUGIN_LIB` / `TRT_EDGE_ATTENTION_LIB`), then
the build folder `build_dir()` (`$TRT_EDGE_CACHE/plugins/<sources hash>`, default
`~/.cache/trt-edge/plugins/<hash>`), keyed by the sources' hash so an edited kernel is never confused
with an old build. `build=True` runs CMake there when nothing is found.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from trt_edge.errors import TrtEdgeError
from trt_edge.files import kit_cache_dir, sha256_file
from trt_edge.log import get_logger

log = get_logger("build")

PLUGIN_LIBRARY = "libtrt_edge_attention_plugin.so"
REGISTRY_PLUGIN_LIBRARY = "libtrt_edge_attention_plugin_registry.so"
KERNEL_LIBRARY = "libtrt_edge_attention.so"
PLUGIN_ENV = "TRT_EDGE_PLUGIN_LIB"
REGISTRY_PLUGIN_ENV = "TRT_EDGE_PLUGIN_REGISTRY_LIB"
KERNEL_ENV = "TRT_EDGE_ATTENTION_LIB"
BUILD_INFO = "trt_edge_build_info.txt"
_SOURCE_SUFFIXES = (".cu", ".cuh", ".h", ".cpp", ".txt")


def source_dir() -> Path:
    """`plugins/fused_attention/` of the source tree (the kit is installed editable from its checkout)."""
    path = Path(__file__).resolve().parents[2] / "plugins" / "fused_attention"
    if not (path / "CMakeLists.txt").is_file():
        raise TrtEdgeError(f"plugin sources not found at {path}: use a source checkout of trt-edge "
                           f"(pip install -e .) or set {PLUGIN_ENV} to a built library")
    return path


def plugin_source_files() -> list[Path]:
    """The files CMake builds the libraries from (sources, headers, CMakeLists.txt), sorted by name."""
    return sorted(p for p in source_dir().iterdir() if p.is_file() and p.suffix in _SOURCE_SUFFIXES)


def sources_sha256() -> str:
    """sha256 over the plugin sources (names and contents): the build folder's key."""
    digest = hashlib.sha256()
    for file in plugin_source_files():
        digest.update(file.name.encode())
        digest.update(b"\0")
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def build_dir() -> Path:
    """Where `build_libraries` builds by default."""
    return kit_cache_dir() / "plugins" / sources_sha256()[:16]


def build_libraries(out: Path | None = None, cuda_architectures: str | None = None,
                    werror: bool = False) -> Path:
    """Configure and build with CMake; return the build folder.

    Args:
        out (Path | None): build folder. Defaults to `build_dir()`.
        cuda_architectures (str | None): CMAKE_CUDA_ARCHITECTURES, e.g. "87" or "native". Defaults to
            the toolkit-dependent list in CMakeLists.txt.
        werror (bool): warnings are errors. Defaults to False.

    Raises:
        TrtEdgeError: cmake or nvcc is missing, or the build failed (with the log's tail).
    """
    if shutil.which("cmake") is None:
        raise TrtEdgeError("cmake is not installed: it is needed to build the fused-attention plugin "
                           "(apt-get install cmake, or pip install cmake)")
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        raise TrtEdgeError("nvcc (the CUDA toolkit) was not found: install it or put it on PATH to build "
                           "the fused-attention plugin")
    target = Path(out) if out is not None else build_dir()
    target.mkdir(parents=True, exist_ok=True)
    configure = ["cmake", "-S", str(source_dir()), "-B", str(target), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DTRT_EDGE_WERROR={'ON' if werror else 'OFF'}"]
    if cuda_architectures:
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architectures}")
    if shutil.which("nvcc") is None:
        configure.append("-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc")
    for command in (configure, ["cmake", "--build", str(target), "-j", str(os.cpu_count() or 2)]):
        log.info("running %s", " ".join(command))
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise TrtEdgeError(f"building the fused-attention plugin failed ({' '.join(command[:2])}): "
                               + " | ".join(tail))
    return target


def read_build_info(folder: Path) -> dict[str, str]:
    """The key=value lines CMake writes (cuda_version, cuda_architectures, plugin_built)."""
    path = Path(folder) / BUILD_INFO
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _locate(env: str, name: str, build: bool) -> Path:
    explicit = os.environ.get(env)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise TrtEdgeError(f"{env}={explicit} does not exist")
        return path
    folder = build_dir()
    if not (folder / name).is_file() and build:
        build_libraries(folder)
    if (folder / name).is_file():
        return folder / name
    if build and name != KERNEL_LIBRARY and read_build_info(folder).get("plugin_built") == "OFF":
        raise TrtEdgeError(f"TensorRT headers were not found, so CMake skipped the plugin target (the kernel "
                           f"library {folder / KERNEL_LIBRARY} was built); install TensorRT or set TENSORRT_ROOT "
                           "and build again")
    hint = "call with build=True (needs cmake and nvcc)" if not build else "see the CMake output"
    raise TrtEdgeError(f"{name} not found (looked at ${env} and {folder}); {hint}, or set {env}")


def plugin_library_path(build: bool = False, for_registry: bool = False) -> Path:
    """The TensorRT plugin library; build it with CMake first when `build` and it is missing.

    Args:
        build (bool): run CMake when the library is missing. Defaults to False.
        for_registry (bool): the variant for `load_library` / `--dynamicPlugins` / `plugins_to_serialize`
            instead of the self-registering one for ctypes. Defaults to False.

    Raises:
        TrtEdgeError: not found (and not built), or TensorRT headers missing so the plugin was skipped.
    """
    if for_registry:
        return _locate(REGISTRY_PLUGIN_ENV, REGISTRY_PLUGIN_LIBRARY, build)
    return _locate(PLUGIN_ENV, PLUGIN_LIBRARY, build)


def has_attention_library(plugins: list[str]) -> bool:
    """Whether a plan's plugin list already loads a fused-attention plugin library (either variant)."""
    return any(Path(p).name in (PLUGIN_LIBRARY, REGISTRY_PLUGIN_LIBRARY) for p in plugins)


def attention_library_for(generation: str, for_registry: bool = False) -> Path:
    """The plugin library for a plan whose ONNX needs `generation` (`IPluginV3`, `IPluginV2DynamicExt`),
    built here with CMake when missing, against this machine's TensorRT.

    Raises:
        TrtEdgeError: the build failed, or this TensorRT gives the other generation (then the ONNX was fused
            for another TensorRT: export it again for this one).
    """
    path = plugin_library_path(build=True, for_registry=for_registry)
    built = read_build_info(path.parent).get("plugin_generation")
    if built and built != generation:
        raise TrtEdgeError(f"the plugin library {path} is {built} (this TensorRT) but the ONNX's fused-attention "
                           f"nodes need {generation}: export the model again for this TensorRT")
    return path


def kernel_library_path(build: bool = False) -> Path:
    """The kernel + C ABI library (no TensorRT needed); build it first when `build` and it is missing."""
    return _locate(KERNEL_ENV, KERNEL_LIBRARY, build)


def load_plugin_library(path: Path) -> ctypes.CDLL:
    """dlopen a plugin or kernel library with RTLD_GLOBAL so TensorRT sees its registered creator.

    Load it before parsing the ONNX model and before deserializing a plan (facts file §5.2).

    Raises:
        TrtEdgeError: the file is missing or cannot be loaded (missing CUDA/TensorRT runtime, wrong arch).
    """
    path = Path(path)
    if not path.is_file():
        raise TrtEdgeError(f"plugin library not found: {path}")
    try:
        return ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise TrtEdgeError(f"cannot load plugin library {path}: {exc} (is the CUDA/TensorRT runtime on "
                           "LD_LIBRARY_PATH, and was it built for this machine?)") from exc


def library_sha256(path: Path) -> str:
    """sha256 of a library file, for the plan manifest."""
    path = Path(path)
    if not path.is_file():
        raise TrtEdgeError(f"plugin library not found: {path}")
    return sha256_file(path)


# C ABI status codes (fused_attention.h).
STATUS_NAMES = {0: "ok", 1: "unsupported head size", 2: "sequence length out of range",
                3: "mask shape mismatch", 4: "invalid argument", 5: "CUDA error", 6: "bias shape mismatch"}
# The C ABI version these bindings declare (trt_edge_attention_abi_version()): 2 adds the additive bias.
ABI_VERSION = 2


def bind_kernel_abi(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the C ABI's argument and return types on a loaded kernel or plugin library.

    Raises:
        TrtEdgeError: the library is an older build (ABI version below `ABI_VERSION`): rebuild it, since
            calling a missing bias entry point would otherwise fail later with a less clear error.
    """
    c_int, c_void_p = ctypes.c_int, ctypes.c_void_p
    lib.trt_edge_attention_abi_version.restype = c_int
    found = int(lib.trt_edge_attention_abi_version())
    if found < ABI_VERSION:
        raise TrtEdgeError(f"the fused-attention library has C ABI version {found}, these bindings need "
                           f"{ABI_VERSION}: rebuild it (trt_edge.plugins.library.build_libraries)")
    lib.trt_edge_attention_max_seq_len.restype = c_int
    lib.trt_edge_attention_supports_head_size.argtypes = [c_int]
    lib.trt_edge_attention_supports_head_size.restype = c_int
    lib.trt_edge_attention_status_string.argtypes = [c_int]
    lib.trt_edge_attention_status_string.restype = ctypes.c_char_p
    lib.trt_edge_attention_check.argtypes = [c_int] * 6
    lib.trt_edge_attention_check.restype = c_int
    lib.trt_edge_attention_check_bias.argtypes = [c_int] * 10
    lib.trt_edge_attention_check_bias.restype = c_int
    lib.trt_edge_attention_forward.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_int,
                                               c_int, c_int, c_int, c_int, ctypes.c_float, c_int, c_void_p]
    lib.trt_edge_attention_forward.restype = c_int
    # q, k, v, key_mask, bias, out, batch, seq, heads, head_size, mask_batch, mask_len, bias_batch, scale,
    # causal, stream
    lib.trt_edge_attention_forward_bias.argtypes = [c_void_p] * 6 + [c_int] * 7 + [ctypes.c_float, c_int, c_void_p]
    lib.trt_edge_attention_forward_bias.restype = c_int
    return lib
