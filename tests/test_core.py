"""The native core (runtime/_core.c): a point on CPU workers run in C over ONNX Runtime's C API.

Logic only (no timing is asserted): the same outputs as the model, every rule of a point (backlog, time cap,
extension, the judge's stop), errors kept per batch, and the policies' placements where they are exact."""

import numpy as np
import onnxruntime as ort
import pytest

from staronnx_cli import modelio
from staronnx_cli.load.schedule import BatchSchedule
from staronnx_cli.runtime import core
from staronnx_cli.runtime.perfmodel import PerfModel
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.scheduler import Limits
from staronnx_cli.runtime.workers import parse_workers
from staronnx_cli.systems.target import load_target

pytestmark = [pytest.mark.realtime, pytest.mark.skipif(bool(core.unavailable()), reason=core.unavailable())]


def at_once(batches: int, size: int = 1) -> BatchSchedule:
    zeros = np.zeros(batches)
    return BatchSchedule(size, zeros, zeros, np.full(batches, size, dtype=np.int64), np.arange(batches) * size)


def every(batches: int, period_s: float) -> BatchSchedule:
    times = np.arange(batches) * period_s
    return BatchSchedule(1, times, times, np.ones(batches, dtype=np.int64), np.arange(batches))


@pytest.fixture(scope="module")
def plans(tiny_cnn_path, tmp_path_factory):
    from typer.testing import CliRunner

    from staronnx_cli.cli.app import app

    out = tmp_path_factory.mktemp("plans")
    for name, args in (("chain", ["--offload", "0.5", "--parts", "3", "--method", "topo"]),
                       ("branches", ["--method", "branches", "--streams", "2", "--min-part-us", "0"])):
        result = CliRunner().invoke(app, ["split", str(tiny_cnn_path), *args, "-o", str(out / name)])
        assert result.exit_code == 0, result.stdout + result.stderr
    return out


def final_outputs(executor: core.CoreExecutor, tensors: core.PartTensors, k: int) -> dict[str, np.ndarray]:
    out = {}
    consumed = {n for names in tensors.inputs for n, _ in names}
    for names in tensors.outputs:
        for name, slot in names:
            kept = executor.core.output(k, slot)
            if name not in consumed and kept is not None:
                data, shape, _ = kept
                out[name] = np.frombuffer(data, dtype=np.float32).reshape(shape)
    return out


@pytest.mark.parametrize("plan", ["chain", "branches"])
def test_a_plan_run_by_the_core_gives_the_model_s_outputs(plans, tiny_cnn_path, plan):
    target = load_target(plans / plan)
    assert len(target.part_files) >= 3
    workers = parse_workers("cpu:1x1,cpu:1x1", [0, 1], False)
    executor = core.CoreExecutor(workers, target.part_files, 2)
    try:
        executor.core.keep_outputs(True)
        records, why = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(at_once(6, 2),
                                                                                       Limits(10 ** 6, 1e9))
        assert why == "" and all(r.end_s >= r.actual_release_s and not r.error for r in records)
        assert all(sorted(t.part for t in r.tasks) == list(range(len(target.part_files))) for r in records)
        tensors = core.PartTensors(target.part_files)
        session = ort.InferenceSession(str(tiny_cnn_path), providers=["CPUExecutionProvider"])
        feeds = {s.name: a[:2] for s, a in zip(tensors.specs(), executor.arrays)}
        expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        for k in range(6):
            got = final_outputs(executor, tensors, k)
            assert got.keys() == expected.keys()
            for name, value in expected.items():
                np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)
    finally:
        executor.close()


def test_a_started_batch_s_next_part_runs_before_any_new_batch_starts(plans):
    """Depth first, as the Python scheduler's FIFO queues: every batch released at once on one worker runs batch by
    batch, each one's parts in a row (first parts queued ahead of later ones kept every batch's tensors alive)."""
    target = load_target(plans / "chain")
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), target.part_files, 1)
    try:
        records, _ = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(at_once(20), Limits(100, 1e9))
        started = sorted((t.start_s, r.index, t.part) for r in records for t in r.tasks)
        parts = len(target.part_files)
        assert [(k, p) for _, k, p in started] == [(k, p) for k in range(20) for p in range(parts)]
    finally:
        executor.close()


def test_opara_runs_the_earliest_batch_first_then_the_plan_s_launch_order(plans):
    target = load_target(plans / "branches")
    order = target.graph.launch_order
    assert order is not None and sorted(order) == list(range(len(target.part_files)))
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), target.part_files, 1)
    try:
        records, _ = core.CoreRunner(executor, make_policy("opara"), PerfModel(), order).run(at_once(10),
                                                                                             Limits(100, 1e9))
        started = sorted((t.start_s, r.index, t.part) for r in records for t in r.tasks)
        assert [(k, p) for _, k, p in started] == [(k, p) for k in range(10) for p in order]
    finally:
        executor.close()


def test_a_task_that_onnx_runtime_refuses_fails_its_batch_and_the_point_goes_on(tiny_cnn_path, monkeypatch):
    real = modelio.random_inputs
    monkeypatch.setattr(modelio, "random_inputs",
                        lambda specs, n, seed=0: {k: v.astype(np.float64) for k, v in real(specs, n, seed).items()})
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), [tiny_cnn_path], 1, core.ExecutorOptions(
        warmup_runs=0))
    try:
        records, why = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(at_once(4), Limits(100, 1e9))
        assert why == ""
        assert all("double" in r.error or "type" in r.error.lower() for r in records), records[0].error
        assert executor.service_time(0, 1, 1, runs=2) != executor.service_time(0, 1, 1, runs=2)  # NaN: it fails
    finally:
        executor.close()


@pytest.fixture(scope="module")
def two_workers(tiny_cnn_path):
    executor = core.CoreExecutor(parse_workers("cpu:1x1,cpu:1x1", [0, 1], False), [tiny_cnn_path], 1)
    yield executor
    executor.close()


def test_more_unfinished_batches_than_the_bound_stop_the_point_with_the_backlog_reason(two_workers):
    records, why = core.CoreRunner(two_workers, make_policy("dmda"), PerfModel()).run(at_once(500), Limits(3, 1e9))
    assert why == "backlog of 4 unfinished batches (> 3)"
    released = [r for r in records if np.isfinite(r.actual_release_s)]
    assert len(released) == 4 and len(records) == 500  # released up to the bound, the rest never
    assert all(not r.tasks or np.isfinite(r.end_s) for r in released)  # tasks that started, finished


def test_the_time_cap_stops_a_point(two_workers):
    _, why = core.CoreRunner(two_workers, make_policy("dmda"), PerfModel()).run(every(50, 0.01), Limits(100, 0.05))
    assert why.startswith("time cap of")


def test_the_issuer_asks_at_the_planned_count_and_releases_what_extend_grants(two_workers):
    asked = []

    def extend() -> bool:
        asked.append(True)
        return len(asked) == 1  # one extension granted, the second refused

    limits = Limits(100, 1e9, planned=5, step=3, extend=extend)
    records, why = core.CoreRunner(two_workers, make_policy("dmda"), PerfModel()).run(every(20, 0.001), limits)
    assert why == "" and len(asked) == 2
    assert [np.isfinite(r.end_s) for r in records] == [True] * 8 + [False] * 12


def test_the_judge_stops_a_point_and_its_reason_is_the_point_s(two_workers):
    seen = []

    def watch(record) -> str:
        seen.append(record.index)
        return "latency rising" if len(seen) == 3 else ""

    records, why = core.CoreRunner(two_workers, make_policy("dmda"), PerfModel()).run(every(400, 0.002),
                                                                                      Limits(100, 1e9), watch)
    assert why == "latency rising"
    assert sum(np.isfinite(r.actual_release_s) for r in records) < 400  # stopped releasing


def test_roundrobin_places_batch_k_on_worker_k_mod_workers_and_eager_fills_idle_workers(two_workers):
    records, _ = core.CoreRunner(two_workers, make_policy("roundrobin"), PerfModel()).run(at_once(20),
                                                                                          Limits(100, 1e9))
    assert [r.tasks[0].worker for r in records] == [k % 2 for k in range(20)]
    records, _ = core.CoreRunner(two_workers, make_policy("eager"), PerfModel()).run(at_once(40), Limits(100, 1e9))
    assert {r.tasks[0].worker for r in records} == {0, 1} and all(np.isfinite(r.end_s) for r in records)


def test_dmda_calibrates_each_worker_then_learns_from_every_task(two_workers):
    perf = PerfModel()
    records, _ = core.CoreRunner(two_workers, make_policy("dmda"), perf).run(at_once(60), Limits(100, 1e9))
    # batch 0 to the first uncalibrated idle worker; batch 1, released while worker 0 holds batch 0, to the other
    assert [r.tasks[0].worker for r in records[:2]] == [0, 1]
    assert perf.stats[(0, "cpu:1", 1)].count >= 10  # both workers share one kind's model, learnt from every task


def test_the_core_learns_as_python_does_and_an_old_cache_weighs_a_window_not_its_history(tiny_cnn_path):
    """An old cache of 5,000 samples of 1 s: each new task weighs 1 / WINDOW, in C as in perfmodel.Stats."""
    from staronnx_cli.runtime import _core, perfmodel
    from staronnx_cli.runtime.perfmodel import WINDOW, Stats

    for name in ("CALIBRATION_SAMPLES", "WINDOW", "OUTLIER_STDS"):  # one rule, written twice: held equal
        assert getattr(_core, name) == getattr(perfmodel, name), name

    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), [tiny_cnn_path], 1)
    perf = PerfModel()
    perf.stats[(0, "cpu:1", 1)] = Stats(5000, 1.0, 0.0, True)
    try:
        records, _ = core.CoreRunner(executor, make_policy("dmda"), perf).run(at_once(60), Limits(100, 1e9))
    finally:
        executor.close()
    replay = Stats(5000, 1.0, 0.0, True)
    for task in sorted((t for r in records for t in r.tasks), key=lambda t: t.end_s):
        replay.add(task.end_s - task.start_s)
    learnt = perf.stats[(0, "cpu:1", 1)]
    assert learnt.count == replay.count == WINDOW
    assert learnt.mean == pytest.approx(replay.mean, rel=1e-6) and learnt.m2 == pytest.approx(replay.m2, rel=1e-6)
    assert learnt.mean < (1 - 1 / WINDOW) ** 59  # 60 tasks of well under a second: 5,000 samples would keep 0.988


def test_the_core_relearns_a_model_whose_times_moved_as_python_does(tiny_cnn_path):
    """A model calibrated at 1 us with no spread: every real task is an outlier; ten in a row and it restarts from
    them, in C as in perfmodel.Stats."""
    from staronnx_cli.runtime.perfmodel import Stats

    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), [tiny_cnn_path], 1)
    perf = PerfModel()
    perf.stats[(0, "cpu:1", 1)] = Stats(10, 1e-6, 0.0, True)
    try:
        records, _ = core.CoreRunner(executor, make_policy("dmda"), perf).run(at_once(40), Limits(100, 1e9))
    finally:
        executor.close()
    replay = Stats(10, 1e-6, 0.0, True)
    for task in sorted((t for r in records for t in r.tasks), key=lambda t: t.end_s):
        replay.add(task.end_s - task.start_s)
    learnt = perf.stats[(0, "cpu:1", 1)]
    assert (learnt.count, learnt.outliers) == (replay.count, replay.outliers)
    assert learnt.mean == pytest.approx(replay.mean, rel=1e-6) and learnt.m2 == pytest.approx(replay.m2, rel=1e-6)
    assert learnt.mean > 5e-6  # moved to the tasks' own times


def test_the_python_scheduler_is_kept_where_the_core_does_not_run():
    cpu = parse_workers("cpu:1x1", [0, 1], False)
    assert core.ineligible(cpu, "dmda", False) == ""
    assert core.ineligible(cpu, "opara", False) == ""
    assert "deadline" in core.ineligible(cpu, "deadline", False)
    assert "mix" in core.ineligible(cpu, "dmda", True)


def test_the_environment_switch_forces_the_python_scheduler(monkeypatch):
    monkeypatch.setenv("STARONNX_HOT_PATH", "python")
    assert core.unavailable() == "STARONNX_HOT_PATH=python"


def fork_plan(tmp_path) -> list:
    """x -> Y (Relu); Y -> Z1 (Relu); Y -> Z2 (Reshape to [-1, 3]: fails on 4 columns): one branch always fails."""
    import onnx
    from onnx import TensorProto, helper

    def part(name, nodes, inputs, outputs, inits=()):
        graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        return tmp_path / f"{name}.onnx"

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])
    return [part("p0", [helper.make_node("Relu", ["x"], ["Y"])], [value("x", ["N", 4])], [value("Y", ["N", 4])]),
            part("p1", [helper.make_node("Relu", ["Y"], ["Z1"])], [value("Y", ["N", 4])], [value("Z1", ["N", 4])]),
            part("p2", [helper.make_node("Reshape", ["Y", "shape"], ["Z2"])], [value("Y", ["N", 4])],
                 [value("Z2", None)], [shape])]


def test_a_failed_branch_fails_its_batch_once_and_its_queued_sibling_never_runs(tmp_path):
    executor = core.CoreExecutor(parse_workers("cpu:1x1,cpu:1x1", [0, 1], False), fork_plan(tmp_path), 1,
                                 core.ExecutorOptions(warmup_runs=0, variable_batches=True))  # fails when run
    try:
        for _ in range(20):
            records, why = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(at_once(6),
                                                                                          Limits(100, 1e9))
            assert why == "" and all("Reshape" in r.error for r in records)
            errors = executor.core.errors()
            assert sorted(k for k, _, _ in errors) == list(range(6))  # one error per batch: no task on freed inputs
    finally:
        executor.close()


def test_a_core_that_cannot_be_built_raises_instead_of_crashing():
    from staronnx_cli.runtime import _core

    too_many = [[(f"x{i}", 0) for i in range(65)]]
    with pytest.raises(ValueError, match="more than 64"):
        _core.Core([[0]], [0], ["absent.onnx"], [[]], too_many, [[("y", 1)]], 2,
                   [(np.zeros((1, 1), np.float32), 1)], 1, [[]], core.OPT_ALL, 0, [])
    with pytest.raises(RuntimeError, match="not built"):
        _core.Core.__new__(_core.Core).wait(1, 1)
    x = [(np.zeros((1, 1), np.float32), 1)]

    def build(deps, free_dims=([],), parts=1):
        return _core.Core([[0]], [0], ["absent.onnx"] * parts, deps, [[("x", 0)]] * parts, [[("y", 1)]] * parts, 2,
                          x, 1, list(free_dims) * parts, core.OPT_ALL, 0, [])

    for deps in ([[0]], [[], [0, 0]], [[1], []]):  # itself, twice (wrote past its successors' room), a later part
        with pytest.raises(ValueError, match="depends on a later part, on itself, twice"):
            build(deps, parts=len(deps))
    with pytest.raises(TypeError, match="free dimensions must be a list"):  # read as a list: a wild pointer
        build([[]], free_dims=[(("N", 1),)])
    with pytest.raises(ValueError, match="at most 65536 queries a batch"):
        _core.Core([[0]], [0], ["absent.onnx"], [[]], [[("x", 0)]], [[("y", 1)]], 2, x, 1 << 40, [[]],
                   core.OPT_ALL, 0, [])


def test_a_workers_service_time_is_measured_on_runs_that_follow_each_other(plans):
    """S(N) from runs back to back on the worker, as in a busy stream (one run per point, each after the worker
    slept, measured its waking up): one point of `runs` batches, every part of every run timed."""
    target = load_target(plans / "chain")
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), target.part_files, 1,
                                 core.ExecutorOptions(warmup_runs=0))
    try:
        runs = executor.run_alone(0, 1, 5)
        assert len(runs) == 5 and all(len(run) == 3 and min(run) > 0 for run in runs)
        seen: list[tuple[int, float]] = []
        s = executor.service_time(0, 1, 3, runs=4, on_task=lambda part, t: seen.append((part, t)))
        assert len(executor.service_samples) == 4 and s == float(np.median(executor.service_samples))
        assert [part for part, _ in seen] == [0, 1, 2] * 4
        assert executor.run_alone(0, 1, 0) == []
    finally:
        executor.close()


def test_a_model_output_that_is_also_its_input_runs_on_the_core(tmp_path):
    """outputs [y, x] of Relu(x) -> y: the part 'made' x, read x, and depended on itself (an internal error)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]), x])
    path = tmp_path / "passthrough.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    tensors = core.PartTensors([path])
    assert tensors.deps == [[]] and tensors.model_inputs == ["x"]
    (y, y_slot), (passed, passed_slot) = tensors.outputs[0]
    assert (y, passed) == ("y", "x") and len({tensors.slot["x"], y_slot, passed_slot}) == 3
    executor = core.CoreExecutor(parse_workers("cpu:1x1", [0, 1], False), [path], 2)
    try:
        executor.core.keep_outputs(True)
        records, why = core.CoreRunner(executor, make_policy("dmda"), PerfModel()).run(at_once(3, 2),
                                                                                       Limits(10 ** 6, 1e9))
        assert why == "" and not any(r.error for r in records)
        given = executor.arrays[0][:2]
        for slot, expected in ((y_slot, np.maximum(given, 0)), (passed_slot, given)):
            data, shape, _ = executor.core.output(2, slot)
            np.testing.assert_array_equal(np.frombuffer(data, dtype=np.float32).reshape(shape), expected)
    finally:
        executor.close()
