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


def test_model_inputs_are_pinned_once_and_a_batch_is_a_view_of_them():
    from staronnx_cli.runtime.gpu import PinnedInputs

    made = []

    def allocate(shape, dtype):
        made.append(shape)
        return np.empty(shape, dtype)

    images = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)
    inputs = PinnedInputs({"x": images}, allocate)
    for size in (1, 2, 4, 2, 1):
        batch = inputs.batch("x", size).array
        assert batch.shape == (size, 3) and np.shares_memory(batch, inputs.buffers["x"])
        assert batch.flags.c_contiguous and np.array_equal(batch, images[:size])
    assert made == [(4, 3)]  # one pinned buffer per input, whatever the number of batches


def test_a_pinned_batch_is_uploaded_from_its_own_buffer_without_a_staging_copy():
    from types import SimpleNamespace

    from staronnx_cli.runtime.gpu import CudaRunner, Pinned, PinnedPool

    uploads = []

    class DeviceArray:
        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

        def set(self, source, stream=None):
            uploads.append(source)

    class Device:
        def __init__(self, device_id):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    runner = object.__new__(CudaRunner)  # CuPy's upload calls stand in: no GPU here
    runner.cupy = SimpleNamespace(cuda=SimpleNamespace(Device=Device), empty=DeviceArray)
    runner.device_id, runner.copy_stream = 0, SimpleNamespace(synchronize=lambda: None)
    runner.pinned = PinnedPool(lambda shape, dtype: np.empty(shape, dtype))
    pinned = np.ones((2, 3), np.float32)
    runner.to_device(Pinned(pinned))
    assert uploads[-1] is pinned and runner.pinned.allocations == 0  # one DMA from the pinned buffer itself
    plain = np.ones((2, 3), np.float32)
    runner.to_device(plain)
    assert uploads[-1] is not plain and runner.pinned.allocations == 1  # pageable memory goes through staging
