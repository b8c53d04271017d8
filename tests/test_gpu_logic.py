"""The GPU worker's logic that does not need a GPU: buffer recycling, and failing in one line without CUDA."""

import importlib.util

import numpy as np
import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.runtime.gpu import DeviceTensor, import_cupy
from staronnx_cli.runtime.pinned import PinnedPool


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
    from staronnx_cli.runtime.pinned import PinnedInputs

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

    from staronnx_cli.runtime.gpu import CudaRunner
    from staronnx_cli.runtime.pinned import Pinned, PinnedPool

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


def test_cuda_graphs_only_where_shapes_are_static_and_there_is_no_control_flow(tiny_cnn_path):
    from onnx import TensorProto, helper

    from staronnx_cli import modelio
    from staronnx_cli.runtime.cudagraph import cuda_graph_eligible

    tiny = modelio.load_model(tiny_cnn_path, with_weights=False)
    assert cuda_graph_eligible(tiny, 4) == (True, "")
    assert cuda_graph_eligible(tiny, None) == (False, "batch sizes vary (dynamic batching)")

    def model(nodes, dims):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
        return helper.make_model(graph)

    assert cuda_graph_eligible(model([helper.make_node("Relu", ["x"], ["y"])], ["batch", "seq"]), 1) == (
        False, "input x has a dynamic dimension (seq)")
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "b", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    loopy = model([helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=branch)], ["batch", 3])
    assert cuda_graph_eligible(loopy, 1) == (False, "control flow (If)")


def test_a_part_whose_capture_fails_keeps_its_plain_session_and_says_why(tiny_cnn_path):
    from staronnx_cli.runtime.gpu import CudaRunner

    runner = object.__new__(CudaRunner)  # no GPU here: only the fallback's bookkeeping is exercised
    runner.graphs, runner.graph_notes, runner.ort, runner.device_id = {}, [], None, 0

    def refuse(path):
        raise RuntimeError("This session cannot use the CUDA Graph feature as requested by the user as all "
                           "compute graph nodes have not been partitioned to the CUDA EP.")

    runner._capture(0, tiny_cnn_path, refuse, 2, {"x": np.zeros((2, 3, 8, 8), np.float32)}, {})
    assert runner.graphs == {} and runner.graph_notes == [
        "part 0: no CUDA graph: This session cannot use the CUDA Graph feature as requested by the user as all "
        "compute graph nodes have not been partitioned to the CUDA EP."]
    runner._capture(0, tiny_cnn_path, refuse, None, {}, {})
    assert runner.graph_notes[-1] == "part 0: no CUDA graph: batch sizes vary (dynamic batching)"


def test_prefetch_issues_copies_in_task_order_ahead_of_the_running_task():
    from staronnx_cli.runtime.prefetch import Prefetcher

    log = []

    def copy(item):
        log.append(("copy", item[0]))
        if item[0] == 3:
            raise RuntimeError("inputs of batch 3 cannot be read")
        return f"event {item[0]}"

    ahead = Prefetcher(copy, depth=2)
    pending = [(0, 0), (1, 0), (2, 0), (3, 0)]
    ahead.ahead(pending)  # batch 0 about to run: its copies first, then the next two held
    assert log == [("copy", 0), ("copy", 1), ("copy", 2)]
    assert ahead.take(pending.pop(0)) == "event 0"  # each task waits for its own event only
    ahead.ahead(pending)  # batch 1 runs: 1 and 2 were issued already, 3 comes now
    assert log[-1] == ("copy", 3) and len(log) == 4
    assert ahead.take(pending.pop(0)) == "event 1" and ahead.take(pending.pop(0)) == "event 2"
    with pytest.raises(RuntimeError, match="batch 3"):  # a failed copy fails its own task, when it runs
        ahead.take(pending.pop(0))
    assert ahead.take((4, 1)) == "event 4" and ahead.issued == {}  # nothing held: issued when it runs


def test_a_gpu_worker_copies_the_inputs_of_the_tasks_it_holds_while_one_runs():
    import queue
    import threading

    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.pinned import PinnedPool
    from staronnx_cli.runtime.workers import WorkerSpec

    log, lock = [], threading.Lock()

    class Runner:  # the CUDA calls stand in: no GPU here; the loop's order is what is tested
        input_names = [["x"]]

        def prefetch(self, feeds, issued_s):
            with lock:
                log.append(("copy", int(feeds["x"][0])))
            return int(feeds["x"][0])

        def arrived(self, copies):
            return {"x": f"on device {copies}"}

        pinned = PinnedPool(lambda shape, dtype: np.empty(shape, dtype))

        def run(self, part, feeds, to_host, lend=False):
            with lock:
                log.append(("run", feeds["x"]))
            assert lend and to_host == {"y"}
            return {"y": self.pinned.take((1,), np.float32)}  # a final output in a lent pinned buffer

        def transfer_interval(self, copies):
            return (float(copies), float(copies) + 0.5)

    executor = object.__new__(ThreadExecutor)
    executor.inboxes, executor.store, executor.final_outputs, executor.lent = [queue.SimpleQueue()], {}, {"y"}, {}
    executor.store_lock = threading.Lock()
    executor.inputs, executor.part_model, executor.first_part = [{"x": np.arange(8)}], [0], [0]
    executor.loop = type("Loop", (), {"now": lambda self: 0.0, "post": lambda self, cb, *args: cb(*args)})()
    done = []
    for k in range(4):  # the scheduler handed over four tasks before the worker looked
        executor.inboxes[0].put((k, 0, 1, lambda *args: done.append(args)))
    executor.inboxes[0].put(None)
    executor._input = lambda k, m, name, size, worker, runner: np.array([k])
    executor._serve_gpu(0, WorkerSpec("cuda0", "cuda", (), 0), [Runner()])
    assert log == [("copy", 0), ("copy", 1), ("copy", 2), ("run", "on device 0"), ("copy", 3),
                   ("run", "on device 1"), ("run", "on device 2"), ("run", "on device 3")]
    assert [(args[1], args[-2], args[-1]) for args in done] == [(k, "", (float(k), k + 0.5)) for k in range(4)]
    runner_pool = Runner.pinned
    assert runner_pool.allocations == 4 and sorted(executor.lent) == [0, 1, 2, 3]
    for k in range(4):  # a released batch gives its output buffers back: the next batches allocate nothing
        executor.release_batch(k)
    assert executor.lent == {} and [runner_pool.take((1,), np.float32) is not None for _ in range(4)]
    assert runner_pool.allocations == 4
    # a task that ends after its batch was released (it failed elsewhere, or the point stopped) keeps nothing
    late = runner_pool.take((1,), np.float32)
    executor._keep(2, {"y": late}, [(runner_pool, late)])
    assert 2 not in executor.store and 2 not in executor.lent and runner_pool.take((1,), np.float32) is late


def test_transfer_times_are_read_back_per_task():
    import pandas as pd

    from staronnx_cli.results.tasks import task_table

    batches = pd.DataFrame({"batch_index": [0, 1], "placement": ["0:cuda0,1:cpu0", "0:cuda0"],
                            "task_times": ["0:0.010-0.012;1:0.012-0.020", "0:0.020-0.022"],
                            "transfer_times": ["0:0.008-0.009", float("nan")]})
    tasks = task_table(batches)
    assert list(tasks.worker) == ["cuda0", "cpu0", "cuda0"]
    assert tasks.transfer_start_s.iloc[0] == 0.008 and tasks.transfer_end_s.iloc[0] == 0.009
    assert tasks.transfer_start_s.iloc[1:].isna().all()  # a CPU task, and a run without the column's value
