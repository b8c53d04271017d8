"""The GPU worker's logic that does not need a GPU: buffer recycling, and failing in one line without CUDA."""

import importlib.util

import numpy as np
import pytest

from staronnx_cli.errors import UserError
from staronnx_cli.kinds import CPU, CUDA
from staronnx_cli.runtime.gpu import DeviceTensor, import_cupy
from staronnx_cli.runtime.pinned import PinnedPool


class FakeDevice:
    """CuPy's `with cupy.cuda.Device(i):`, which these tests need only to enter."""

    def __init__(self, device_id):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
    with pytest.raises(UserError, match=r"CuPy: .*pip install -e '.*\[cuda13\]' or .*pip install -e '.*\[cuda12\]'"):
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

    from staronnx_cli.runtime.gpu import CudaSessions
    from staronnx_cli.runtime.pinned import Pinned, PinnedPool

    uploads = []

    class DeviceArray:
        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

        def set(self, source, stream=None):
            uploads.append(source)

    runner = object.__new__(CudaSessions)  # CuPy's upload calls stand in: no GPU here
    runner.cupy = SimpleNamespace(cuda=SimpleNamespace(Device=FakeDevice), empty=DeviceArray)
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
    # a part's input cut after a Transpose has its batch on the second axis: fixed by the session all the same
    second = model([helper.make_node("Relu", ["x"], ["y"])], [4, "batch", 16])
    assert cuda_graph_eligible(second, 2) == (True, "")


def test_a_tensor_with_its_batch_on_the_second_axis_is_counted_at_the_batch_size():
    from onnx import TensorProto, helper

    from staronnx_cli.runtime.gpumemory import graph_buffer_bytes, tensor_bytes

    second = helper.make_tensor_value_info("t", TensorProto.FLOAT, [4, "batch", 16])
    first = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])  # exported at batch 1, batch first
    assert tensor_bytes(second, 8, frozenset({"batch"})) == 4 * 8 * 16 * 4
    assert tensor_bytes(first, 8) == 8 * 3 * 8 * 4
    graph = helper.make_graph([helper.make_node("Relu", ["t"], ["u"])], "g", [second],
                              [helper.make_tensor_value_info("u", TensorProto.FLOAT, [4, "batch", 16])])
    assert graph_buffer_bytes(helper.make_model(graph), 8) == 2 * 4 * 8 * 16 * 4


def test_a_part_whose_capture_fails_keeps_its_plain_session_and_says_why(tiny_cnn_path):
    from staronnx_cli.runtime.gpu import CudaSessions

    runner = object.__new__(CudaSessions)  # no GPU here: only the fallback's bookkeeping is exercised
    runner.graphs, runner.graph_notes, runner.graph_rejections, runner.ort, runner.device_id = {}, [], [], None, 0

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
    from staronnx_cli.runtime.hotwait import Bell

    executor.inboxes, executor.store, executor.final_outputs, executor.lent = [queue.SimpleQueue()], {}, {"y"}, {}
    executor.bells, executor.polls = [Bell()], False
    executor.store_lock = threading.Lock()
    executor.inputs, executor.part_model, executor.first_part = [{"x": np.arange(8)}], [0], [0]
    executor.loop = type("Loop", (), {"now": lambda self: 0.0, "deliver": lambda self, cb, *args: cb(*args)})()
    done = []
    for k in range(4):  # the scheduler handed over four tasks before the worker looked
        executor.inboxes[0].put((k, 0, 1, lambda *args: done.append(args)))
    executor.inboxes[0].put(None)
    executor._input = lambda k, m, name, size, worker, runner: np.array([k])
    executor._serve_gpu(0, WorkerSpec("cuda0", CUDA, (), 0), [Runner()])
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


def test_a_link_is_fitted_from_timed_copies_of_two_sizes():
    from staronnx_cli.runtime.transfer import Link, fit_link, slowest

    true = Link(50e9, 8e-6)
    rng = np.random.default_rng(0)
    samples = [(n, true.seconds(n) * (1 + 0.01 * rng.standard_normal())) for n in (4096, 6_000_000) for _ in range(7)]
    fitted = fit_link(samples)
    assert abs(fitted.bandwidth_Bps / 50e9 - 1) < 0.03 and abs(fitted.latency_s - 8e-6) < 1e-6
    assert fit_link([(1_000_000, 1e-4)]) == Link(1e10, 0.0)  # one size: all of it is bandwidth
    assert fit_link([(4096, 2e-5), (1 << 20, 1e-5)]).latency_s == 0.0  # noise: no negative latency
    with pytest.raises(ValueError):
        fit_link([(0, 1e-5)])
    assert slowest([Link(50e9, 1e-6), Link(20e9, 1e-6)]) == Link(20e9, 1e-6) and slowest([]) is None
    assert Link(48.5e9, 7.25e-6).to_json() == {"bandwidth_GBps": 48.5, "latency_us": 7.25}


def test_a_graph_is_kept_when_it_differs_by_a_small_share_of_the_outputs_magnitude():
    from staronnx_cli.runtime.cudagraph import outputs_differ

    rng = np.random.default_rng(1)
    plain = rng.standard_normal((4, 1000)).astype(np.float32) * 5
    plain[0, :10] = 1e-7  # values near zero: a fixed rtol 1e-3 / atol 1e-5 refused these
    other_algorithm = plain + rng.standard_normal(plain.shape).astype(np.float32) * 2e-3
    assert not np.allclose(other_algorithm, plain, rtol=1e-3, atol=1e-5)
    assert outputs_differ(other_algorithm, plain, "y") == ""
    stale = plain * 0.5  # a replay that read the old inputs of a half-scaled batch
    why = outputs_differ(stale, plain, "y")
    assert why.startswith("output y differs from the plain session's by up to") and "allowed" in why
    assert outputs_differ(plain[:2], plain, "y").startswith("output y has shape")
    assert outputs_differ(np.zeros(3), np.zeros(3), "y") == ""
    nan = plain.copy()
    nan[0, 0] = np.nan
    assert outputs_differ(nan, nan, "y") == "" and "non-finite" in outputs_differ(nan, plain, "y")


def test_a_graph_whose_outputs_disagree_is_dropped_and_reported_with_the_difference(tiny_cnn_path, monkeypatch):
    from staronnx_cli.runtime import gpu
    from staronnx_cli.runtime.gpu import CudaSessions, DeviceTensor

    monkeypatch.setattr(gpu, "GraphPart", lambda *args: "captured")  # no GPU: the capture itself stands in
    runner = object.__new__(CudaSessions)
    runner.graphs, runner.graph_notes, runner.graph_rejections = {}, [], []
    runner.ort, runner.device_id, runner.cupy, runner.bind_stream = None, 0, None, None
    plain = np.ones((2, 4), np.float32)
    expected = {"y": DeviceTensor(plain, 0)}  # the plain session's warm-up outputs, on the device
    runner.to_host = lambda value: value.array
    runner.run = lambda part, feeds, to_host, lend=False: {"y": plain * 1.2}  # the graph's outputs
    runner._run_plain = lambda part, feeds, to_host, lend=False: {"y": plain}
    runner._capture(0, tiny_cnn_path, lambda path: object(), 2, {"x": np.ones((2, 3, 8, 8), np.float32)}, expected)
    assert runner.graphs == {} and len(runner.graph_rejections) == 1
    assert runner.graph_rejections[0].startswith("part 0: output y differs from the plain session's by up to 0.2")
    runner.run = lambda part, feeds, to_host, lend=False: {"y": plain * (1 + 1e-4)}  # TF32-like noise
    runner._capture(0, tiny_cnn_path, lambda path: object(), 2, {"x": np.ones((2, 3, 8, 8), np.float32)}, expected)
    assert runner.graphs == {0: "captured"} and runner.graph_notes[-1] == "part 0: CUDA graph"


def test_rejected_graphs_are_warnings_of_the_sweep():
    from types import SimpleNamespace

    from staronnx_cli.cli.sweep import notice_line
    from staronnx_cli.sweep.orchestrator import warn_rejected_graphs
    from staronnx_cli.systems.contract import EngineLog

    said = []
    log = EngineLog(graph_rejections=["N=1 cuda0 part 0: output y differs by up to 0.2"])
    warn_rejected_graphs(SimpleNamespace(log=log), said.append)
    assert said == ["warning: no CUDA graph for N=1 cuda0 part 0: output y differs by up to 0.2; the plain session "
                    "serves it (--no-cuda-graphs says so up front)"]
    assert notice_line(said[0]).startswith("[yellow]warning:[/] no CUDA graph for N=1 cuda0 part 0")
    assert notice_line("--rate auto: capacity").startswith("[yellow]note:[/]")


class _FakeStreams:
    """CuPy's current-stream rule, as far as these tests need it: `with stream:` makes it current."""

    def __init__(self):
        self.current, self.log = "null", []

    def stream(self, name):
        fake = self

        class Stream:
            def __enter__(self):
                self.saved, fake.current = fake.current, name
                return self

            def __exit__(self, *exc):
                fake.current = self.saved
                return False

            def synchronize(self):
                fake.log.append(("synchronize", name))

        return Stream()

    def array(self):
        fake = self

        class Array:
            dtype = np.dtype(np.float32)

            def __mul__(self, other):
                fake.log.append(("multiply", fake.current))
                return Array()

        return Array()


def test_the_graph_checks_changed_inputs_are_made_on_a_stream_that_is_waited_for():
    from types import SimpleNamespace

    from staronnx_cli.runtime.gpu import DeviceTensor, _halved

    fake = _FakeStreams()

    class Device(FakeDevice):
        def __init__(self, device_id):
            fake.log.append(("device", device_id))

    cupy = SimpleNamespace(cuda=SimpleNamespace(Device=Device))
    halved = _halved(DeviceTensor(fake.array(), 1), cupy, fake.stream("bind"))
    assert isinstance(halved, DeviceTensor)  # on the tensor's own device, on the stream, waited for
    assert fake.log == [("device", 1), ("multiply", "bind"), ("synchronize", "bind")]


def test_a_peer_gpus_tensor_is_copied_on_a_stream_that_is_waited_for():
    from types import SimpleNamespace

    from staronnx_cli.runtime.gpu import CudaSessions, DeviceTensor

    fake = _FakeStreams()

    def asarray(array):
        fake.log.append(("peer copy", fake.current))
        return "copied"

    runner = object.__new__(CudaSessions)
    runner.cupy = SimpleNamespace(cuda=SimpleNamespace(Device=FakeDevice), asarray=asarray)
    runner.device_id, runner.bind_stream = 0, fake.stream("bind")
    assert runner._as_cupy(DeviceTensor("on gpu 1", 1)) == "copied"
    assert fake.log == [("peer copy", "bind"), ("synchronize", "bind")]


def test_a_gpu_workers_memory_budget_is_shared_by_plain_and_graph_sessions_after_its_buffers(tiny_cnn_path):
    from staronnx_cli import modelio
    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.gpumemory import arena_share, graph_buffer_bytes
    from staronnx_cli.runtime.workers import WorkerSpec

    proto = modelio.load_model(tiny_cnn_path, with_weights=False)
    inputs = modelio.random_inputs(modelio.input_specs(proto), 4)
    out_shape = [d.dim_value or 4 for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert graph_buffer_bytes(proto, 4) == sum(v.nbytes for v in inputs.values()) + 4 * int(np.prod(out_shape))
    executor = object.__new__(ThreadExecutor)
    executor.workers = [WorkerSpec("cuda0", CUDA, (), 0), WorkerSpec("cpu0", CPU, (0,), None)]
    executor.memory_limits = {"cuda0": 2**20, "cpu0": 2**20}
    executor.variable_batches, executor.batches, executor.part_model = False, [4], [0, 0]
    executor.inputs = [inputs]
    held = sum(v.nbytes for v in inputs.values()) + 2 * graph_buffer_bytes(proto, 4)
    executor.cuda_graphs = True
    assert executor._arena_caps([proto, proto]) == {"cuda0": (2**20 - held) // 4}  # 2 parts x (plain + graph)
    executor.cuda_graphs = False
    assert executor._arena_caps([proto, proto]) == {"cuda0": (2**20 - sum(v.nbytes for v in inputs.values())) // 2}
    executor.memory_limits = {"cuda0": 100}
    with pytest.raises(UserError, match="taken whole by its pinned inputs"):
        executor._arena_caps([proto, proto])
    assert arena_share(1000, 2, 100, "cuda0") == 450


def test_ctrl_c_while_gpu_workers_prepare_stops_the_captures_not_yet_started(tiny_cnn_path, monkeypatch):
    import threading
    import time

    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.workers import WorkerSpec

    captures, first = [], threading.Event()

    def prepare(self, worker, m, warmup_runs):  # a GPU worker's preparation: its capture under the lock
        with self._capturing():
            captures.append(worker.name)
            first.set()
            time.sleep(0.3)
        return object()

    def interrupted(self, ready):
        first.wait(5)
        raise KeyboardInterrupt  # Ctrl-C while the first worker captures

    monkeypatch.setattr(ThreadExecutor, "_prepare", prepare)
    monkeypatch.setattr(ThreadExecutor, "_await_workers", interrupted)
    workers = [WorkerSpec(f"cuda0.{i}", CUDA, (), 0) for i in range(4)]
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ThreadExecutor(RealLoop(), workers, [tiny_cnn_path], 1)
    assert captures == [captures[0]]  # the three waiting for the lock did not capture
    assert time.monotonic() - t0 < 3  # nor did close() wait 10 s per thread


def test_dmda_weighs_input_bytes_where_they_can_differ_between_workers():
    from staronnx_cli.runtime.executors import ModelledExecutor
    from staronnx_cli.runtime.loop import VirtualLoop
    from staronnx_cli.runtime.perfmodel import PerfModel
    from staronnx_cli.runtime.policies import make_policy
    from staronnx_cli.runtime.scheduler import PartGraph, Scheduler
    from staronnx_cli.runtime.workers import WorkerSpec

    def weighs(workers):
        executor = ModelledExecutor(VirtualLoop(), workers, lambda part, kind, b: 0.001)
        executor.needs_input_bytes = False  # as the real executor: only the policy could need them
        return Scheduler(VirtualLoop(), executor, workers, make_policy("dmda"), PerfModel(),
                         PartGraph.single()).weighs_inputs

    cpu = [WorkerSpec("cpu0", CPU, (0,)), WorkerSpec("cpu1", CPU, (1,))]
    gpus = [WorkerSpec("cuda0.0", CUDA, (), 0), WorkerSpec("cuda0.1", CUDA, (), 0)]
    assert not weighs(cpu)  # every input is where every worker is
    assert weighs(gpus)  # one device, but the model's inputs come from the host
    assert weighs([cpu[0], gpus[0]])


def test_a_memory_share_of_nothing_is_refused_not_passed_as_no_cap():
    from staronnx_cli.runtime.gpumemory import arena_share

    with pytest.raises(UserError, match="taken whole"):
        arena_share(1000, 2000, 0, "cuda0")
    assert arena_share(4000, 2, 0, "cuda0") == 2000
