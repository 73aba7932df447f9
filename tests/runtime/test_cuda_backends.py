"""Device-memory backend selection: a clear error naming every binding tried when none works."""

from __future__ import annotations

import pytest

from trt_edge.errors import TrtEdgeError
from trt_edge.runtime.cuda import open_backend


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(TrtEdgeError, match="device_memory must be auto or one of"):
        open_backend("opencl")


def test_auto_without_any_binding_names_them_all() -> None:
    try:
        backend = open_backend("auto")
    except TrtEdgeError as exc:
        text = str(exc)
        assert "cuda-python" in text and "pycuda" in text and "torch" in text
    else:  # a CUDA machine: the backend works end to end on a small round trip
        import numpy as np

        data = np.arange(16, dtype=np.float32)
        ptr = backend.malloc(data.nbytes)
        out = np.empty_like(data)
        backend.htod(ptr, data)
        backend.dtoh(out, ptr)
        backend.synchronize()
        backend.free(ptr)
        backend.close()
        np.testing.assert_array_equal(out, data)
