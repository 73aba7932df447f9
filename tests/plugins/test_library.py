"""The Python glue around the plugin libraries: locating, loading, hashing, and clear errors when a
library is absent. (The CMake build itself is exercised in test_kernel_build.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.plugins import library
from trt_edge.plugins.library import (
    PLUGIN_ENV,
    build_dir,
    library_sha256,
    load_plugin_library,
    plugin_library_path,
    read_build_info,
    sources_sha256,
)


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    lib = tmp_path / "libx.so"
    lib.write_bytes(b"\x7fELF not really")
    assert library_sha256(lib) == hashlib.sha256(b"\x7fELF not really").hexdigest()
    with pytest.raises(TrtEdgeError, match="not found"):
        library_sha256(tmp_path / "missing.so")


def test_load_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(TrtEdgeError, match="not found"):
        load_plugin_library(tmp_path / "missing.so")
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(TrtEdgeError, match="cannot load plugin library"):
        load_plugin_library(bogus)


def test_missing_library_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path))
    monkeypatch.delenv(PLUGIN_ENV, raising=False)
    assert build_dir().parent == tmp_path / "plugins"
    with pytest.raises(TrtEdgeError, match="build=True"):
        plugin_library_path()
    monkeypatch.setenv(PLUGIN_ENV, str(tmp_path / "nope.so"))
    with pytest.raises(TrtEdgeError, match="does not exist"):
        plugin_library_path()
    real = tmp_path / "libtrt_edge_attention_plugin.so"
    real.write_bytes(b"x")
    monkeypatch.setenv(PLUGIN_ENV, str(real))
    assert plugin_library_path() == real


def test_skipped_plugin_target_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When CMake skipped the plugin (no TensorRT headers), asking for it says so instead of 'not found'."""
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path))
    monkeypatch.delenv(PLUGIN_ENV, raising=False)
    folder = build_dir()
    folder.mkdir(parents=True)
    (folder / "trt_edge_build_info.txt").write_text("cuda_version=13.0\ncuda_architectures=87;90;110\n"
                                                    "plugin_built=OFF\n")
    (folder / "libtrt_edge_attention.so").write_bytes(b"x")
    monkeypatch.setattr(library, "build_libraries", lambda out=None, **_: folder)
    assert read_build_info(folder)["plugin_built"] == "OFF"
    with pytest.raises(TrtEdgeError, match="skipped the plugin target"):
        plugin_library_path(build=True)
    assert library.kernel_library_path() == folder / "libtrt_edge_attention.so"


def test_build_folder_follows_the_sources() -> None:
    digest = sources_sha256()
    assert len(digest) == 64
    assert build_dir().name == digest[:16]


def test_an_older_kernel_library_is_refused() -> None:
    """A library built before the bias entry points (ABI 1) must be rebuilt, not called into."""

    class OldLibrary:
        pass

    def abi_version() -> int:
        return 1

    old = OldLibrary()
    old.trt_edge_attention_abi_version = abi_version  # type: ignore[attr-defined]
    with pytest.raises(TrtEdgeError, match=r"ABI version 1.*rebuild"):
        library.bind_kernel_abi(old)  # type: ignore[arg-type]


def test_attention_library_must_be_the_plans_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local build loads the plugin it builds only when this TensorRT gives the ONNX's generation."""
    monkeypatch.setenv("TRT_EDGE_CACHE", str(tmp_path))
    monkeypatch.delenv(PLUGIN_ENV, raising=False)
    folder = build_dir()
    folder.mkdir(parents=True)
    (folder / "libtrt_edge_attention_plugin.so").write_bytes(b"x")
    (folder / "trt_edge_build_info.txt").write_text("plugin_built=ON\ntensorrt_version=8.6.2\n"
                                                    "plugin_generation=IPluginV2DynamicExt\n")
    assert library.attention_library_for("IPluginV2DynamicExt") == folder / "libtrt_edge_attention_plugin.so"
    with pytest.raises(TrtEdgeError, match="export the model again"):
        library.attention_library_for("IPluginV3")
    assert library.has_attention_library(["/opt/x/libtrt_edge_attention_plugin_registry.so"])
    assert not library.has_attention_library(["libother.so"])
