"""The GPU worker's logic that does not need a GPU: buffer recycling, and failing in one line without CUDA."""

import importlib.util

import numpy as np
import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.runtime.gpu import DeviceTensor, PinnedPool, import_cupy


def test_pinned_buffers_are_recycled_by_shape_and_dtype():
    made = []

    def allocate(shape, dtype):
        made.append((shape, dtype))
        return np.empty(shape, dtype)

    pool = PinnedPool(allocate)
    a = pool.take((2, 3), np.float32)
    pool.give(a)
    assert pool.take((2, 3), np.float32) is a  # the same buffer comes back
    b = pool.take((2, 3), np.float32)  # the first is out: a second is made
    c = pool.take((2, 3), np.float16)  # another dtype is another buffer
    assert b is not a and c.dtype == np.float16 and pool.allocations == 3 and len(made) == 3
    for buffer in (a, b, c):
        pool.give(buffer)
    for _ in range(100):  # a steady stream allocates nothing more
        x, y = pool.take((2, 3), np.float32), pool.take((2, 3), np.float32)
        pool.give(x)
        pool.give(y)
    assert pool.allocations == 3


def test_a_device_tensor_names_its_memory_node():
    assert DeviceTensor(object(), 1).memory_node == "cuda:1"


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_without_cupy_a_cuda_worker_says_how_to_install_it():
    with pytest.raises(UserError, match=r"staronnx\[cuda12\]"):
        import_cupy()
