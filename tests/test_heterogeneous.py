"""Unequal workers (a GPU and a CPU group) on the virtual clock: the ideal and the capacity, the backlog bound,
points judged once their queue settled, calibration before the points, and the saturation target on the
H100 platform measured for GoogLeNet (experiments/platforms/h100_googlenet_whole.toml)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from staronnx_cli.kinds import CPU, CUDA
from staronnx_cli.metrics.points import capacity_qps, ideal_latency_s
from staronnx_cli.runtime.calibration import measure_workers
from staronnx_cli.runtime.executors import ModelledExecutor
from staronnx_cli.runtime.loop import VirtualLoop
from staronnx_cli.runtime.perfmodel import CALIBRATION_SAMPLES, PerfModel
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.scheduler import PartGraph
from staronnx_cli.runtime.workers import WorkerSpec
from staronnx_cli.sweep.point import PointSpec, SchedulerSetup, batch_rows, max_backlog, point_row, run_point
from staronnx_cli.sweep.runner import SweepSettings, run_sweep

PLATFORM = Path(__file__).parents[1] / "experiments" / "platforms" / "h100_googlenet_whole.toml"
GPU_S, CPU_S = 0.002, 0.008  # a batch of one: 2 ms on the GPU, 8 ms on the CPU group
WORKERS = [WorkerSpec("cuda0", CUDA, (), 0), WorkerSpec("cpu0", CPU, (0, 1))]


def test_the_ideal_fills_the_fastest_worker_first_and_the_capacity_adds_up():
    assert capacity_qps(1, [GPU_S, CPU_S]) == pytest.approx(625.0)  # 500 + 125 batches per second
    assert ideal_latency_s(1, 400.0, [GPU_S, CPU_S]) == pytest.approx(GPU_S)  # the GPU alone keeps up
    # at 600 q/s the GPU serves 500 batches/s, the CPU 100: mean service (500 * 2 + 100 * 8) / 600 ms
    assert ideal_latency_s(1, 600.0, [GPU_S, CPU_S]) == pytest.approx(0.003)
    assert ideal_latency_s(1, 700.0, [GPU_S, CPU_S]) == float("inf")
    assert ideal_latency_s(4, 100.0, 0.05) == pytest.approx(0.08)  # one number: identical workers, any count


def test_the_backlog_bound_leaves_room_for_the_queue_dmda_builds_before_a_slow_worker_helps():
    assert max_backlog(2) == 8 and max_backlog(4, [0.01] * 4) == 16
    assert max_backlog(2, [0.00675, 0.120]) == 2 * 18 + 4  # a GPU at 6.75 ms, a CPU group at 120 ms
    assert max_backlog(2, [0.001, 1.0]) == 64


def hetero_point(rate: float, batches: int = 40, extensions: int = 4, warmup: int = 5):
    """GPU + CPU under dmda with calibrated models, at `rate`, on the virtual clock."""
    times = {"cuda": GPU_S, "cpu:2": CPU_S}
    executor = ModelledExecutor(VirtualLoop(), WORKERS, lambda part, kind, b: times[kind])
    perf = PerfModel()
    for kind, seconds in times.items():
        for _ in range(CALIBRATION_SAMPLES + 1):
            perf.record(0, kind, 1, seconds)
    spec = PointSpec(1, rate, warmup, batches, extensions=extensions)
    records, stop, arrivals, first = run_point(spec, SchedulerSetup(WORKERS, perf, VirtualLoop), executor,
                                               make_policy("dmda"), PartGraph.single(), services_s=[GPU_S, CPU_S])
    return spec, records, stop, arrivals, first


def test_a_queue_still_filling_is_run_on_until_it_settles_then_measured_there():
    # 510 q/s: just beyond the GPU's 500, within the pair's 625. dmda sends a batch to the CPU once the GPU's
    # queue ends later than the CPU would (6 ms of queue); at 0.04 ms more work per batch that takes ~150 batches
    spec, records, stop, arrivals, first = hetero_point(510.0)
    assert stop == "" and first > spec.warmup and (first - spec.warmup) % spec.batches == 0
    measured = records[first:first + spec.batches]
    row = point_row(spec, records, stop, arrivals, ["cuda0", "cpu0"], [GPU_S, CPU_S], first)
    assert not row["congested"] and row["warmup_batches"] == first and row["capacity_qps"] == 625.0
    assert any(t.worker == 1 for r in measured for t in r.tasks)  # the CPU helps in the measured window
    latencies = [r.end_s - r.first_arrival_s for r in measured]
    assert max(latencies) - min(latencies) < 0.0025  # steady: no longer climbing from 2 ms toward 8
    flags = [b["measured"] for b in batch_rows(spec, records, ["cuda0", "cpu0"], first)]
    assert flags.index(True) == first and sum(flags) == spec.batches

    # without room to extend, the same point is judged while its queue still climbs
    spec0, records0, stop0, arrivals0, first0 = hetero_point(510.0, extensions=0)
    assert first0 == spec0.warmup
    early = [r.end_s - r.first_arrival_s for r in records0[first0:]]
    assert early[-1] - early[0] > 0.001 and max(early) < min(latencies)  # lower than where it settles


def test_beyond_the_capacity_a_point_is_not_extended_and_is_congested():
    spec, records, stop, arrivals, first = hetero_point(700.0, batches=60)
    row = point_row(spec, records, stop, arrivals, ["cuda0", "cpu0"], [GPU_S, CPU_S], first)
    assert first == spec.warmup and row["congested"]


def sim_sweep(model: Path, tmp_path, batch: int, rates, calibrate: bool = False, batches: int = 100):
    out = tmp_path / f"n{batch}{'_cal' if calibrate else ''}"
    rows = run_sweep(SweepSettings(model, out, policy="dmda", batch_sizes=(batch,), rates=tuple(rates),
                                   batches=batches, warmup=5, engine="sim", platform=PLATFORM, calibrate=calibrate,
                                   model_name="googlenet"))
    return pd.DataFrame(rows), out


@pytest.fixture(scope="module")
def googlenet_target(tmp_path_factory):
    from staronnx_cli.zoo.cache import build_cached

    return build_cached("googlenet")[0]


@pytest.mark.parametrize("batch, rates", [(1, [400, 475, 500, 525, 550]), (4, [1400, 1500, 1550, 1575, 1625])])
def test_gpu_plus_cpu_saturates_within_ten_percent_of_the_sum_of_capacities(tmp_path, googlenet_target, batch,
                                                                             rates):
    points, _ = sim_sweep(googlenet_target, tmp_path, batch, rates)
    capacity = float(points.capacity_qps.iloc[0])
    assert capacity == pytest.approx({1: 610.6, 4: 1800.0}[batch], rel=0.01)
    assert rates[-1] >= 0.9 * capacity  # the last rate of the grid is at 90 % of the capacity, or beyond
    assert not points.congested.any(), points[["rate_qps", "reason"]]
    busy = points.utilisation.str.extract(r"cpu0=([\d.]+)")[0].astype(float)
    assert busy.iloc[-1] > 0.3  # the CPU group carries its share near saturation


def calibration_point(calibrate_first: bool):
    """50 q/s at N=1 on GPU + CPU, dmda, models learnt from every task: the GPU alone keeps up with room to spare."""
    times = {"cuda": GPU_S, "cpu:2": CPU_S}
    executor = ModelledExecutor(VirtualLoop(), WORKERS, lambda part, kind, b: times[kind])
    perf, log = PerfModel(), []
    if calibrate_first:
        _, log = measure_workers(executor, WORKERS, perf, 1, 1)
    spec = PointSpec(1, 50.0, 5, 40)
    records, *_ = run_point(spec, SchedulerSetup(WORKERS, perf, VirtualLoop), executor, make_policy("dmda"),
                            PartGraph.single())
    return {t.worker for r in records for t in r.tasks}, perf, log


def test_calibration_runs_before_the_points_never_inside_one():
    used, _, _ = calibration_point(calibrate_first=False)
    assert used == {0, 1}  # StarPU's rule inside a point: once the GPU is calibrated, the idle CPU gets tasks
    used, perf, log = calibration_point(calibrate_first=True)
    assert used == {0}  # calibrated alone beforehand: every task of the point goes where it ends first
    assert perf.calibrated(0, "cuda", 1) and perf.calibrated(0, "cpu:2", 1)
    assert [(c.kind, c.calibrated, c.runs) for c in log] == [("cuda", True, 11), ("cpu:2", True, 11)]


def test_a_simulated_sweep_with_calibrate_records_its_calibration(tmp_path, googlenet_target):
    _, out = sim_sweep(googlenet_target, tmp_path, 1, [50.0], calibrate=True, batches=20)
    log = json.loads((out / "run.json").read_text())["calibration"]
    assert {(c["kind"], c["calibrated"], c["runs"]) for c in log} == {("cuda", True, 11), ("cpu:15", True, 11)}
    _, again = sim_sweep(googlenet_target, tmp_path / "seeded", 1, [50.0], batches=20)  # the platform's times
    assert not any(c["calibrated"] for c in json.loads((again / "run.json").read_text())["calibration"])


def poisson_point(rate: float, seed: int, workers=(WORKERS[1],), batch: int = 1, batches: int = 30):
    """One CPU worker of S = 8 ms (capacity 125 batches/s) under Poisson arrivals, judged as a sweep judges it."""
    executor = ModelledExecutor(VirtualLoop(), list(workers), lambda part, kind, b: CPU_S)
    perf = PerfModel()
    for _ in range(CALIBRATION_SAMPLES + 1):
        perf.record(0, "cpu:2", batch, CPU_S)
    spec = PointSpec(batch, rate, 5, batches, arrival="poisson", seed=seed)
    records, stop, arrivals, first = run_point(spec, SchedulerSetup(list(workers), perf, VirtualLoop), executor,
                                               make_policy("dmda"), PartGraph.single(),
                                               services_s=[CPU_S] * len(workers))
    return point_row(spec, records, stop, arrivals, [w.name for w in workers], [CPU_S] * len(workers), first)


def test_poisson_points_at_70_percent_of_capacity_are_measured_not_called_congested():
    # 87.5 q/s against a capacity of 125: a stable queue whose bursts often pass 8 batches
    rows = [poisson_point(87.5, seed) for seed in range(100)]  # the bound of fixed arrivals called 6 of 100 congested
    congested = [r for r in rows if r["congested"]]
    assert len(congested) <= 0.05 * len(rows), [r["reason"] for r in congested]


def test_poisson_points_beyond_capacity_are_still_congested():
    rows = [poisson_point(187.5, seed, batches=60) for seed in range(10)]  # 1.5 x the capacity
    assert all(r["congested"] for r in rows), [r.get("reason") for r in rows]
