"""Benchmark of the runtime (issue 4's figures), every figure a ratio of two things measured in this one run.

(a) saturation throughput of the runtime with one CPU worker / a plain ORT loop, same session options
(b) dispatch overhead per task on a trivial model (release -> task start, median) and per task at saturation
(c) mean max-latency / ideal (N-1)/rho + S(N) over the points at <= 80 % utilisation
(d) measured rho_max / ideal w N / S(N)
(e) release lateness p99 over every batch of the sweeps
(f) cpu:2x1 vs cpu:1x2 on googlenet: rho_max and latency at a common rate
Usage: python experiments/runtime_bench.py [--model googlenet] [--out results/bench/runtime] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper
from rich.console import Console
from rich.table import Table

from staronnx_cli import modelio
from staronnx_cli.load.schedule import BatchSchedule
from staronnx_cli.runtime import core
from staronnx_cli.runtime.executors import ThreadExecutor
from staronnx_cli.runtime.loop import RealLoop
from staronnx_cli.runtime.perfmodel import PerfModel
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.realtime import pin_driver, pinned_session_options
from staronnx_cli.runtime.scheduler import Limits, PartGraph, Scheduler
from staronnx_cli.runtime.workers import parse_workers
from staronnx_cli.sweep.runner import SweepSettings, run_sweep
from staronnx_cli.zoo.cache import build_cached

CORES = sorted(os.sched_getaffinity(0))


def trivial_model(path: Path) -> Path:
    """y = x + 1 on 16 floats per sample: a task whose ORT run is a few microseconds."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def plain_loop_qps(path: Path, cores: list[int], batch: int, runs: int) -> float:
    """The baseline: one ORT session, the same options as a worker's, run back to back on the same cores."""
    result: list[float] = []

    def work():
        so = pinned_session_options(cores, path, batch)
        pin_driver(cores)  # as the runtime's workers: this thread on the first core, ORT's threads on the others
        specs = modelio.input_specs(modelio.load_model(path, with_weights=False))
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = modelio.random_inputs(specs, batch)
        names = [o.name for o in session.get_outputs()]
        for _ in range(3):
            session.run(names, feeds)
        start = time.perf_counter()
        for _ in range(runs):
            session.run(names, feeds)
        result.append(runs * batch / (time.perf_counter() - start))

    thread = threading.Thread(target=work)  # a thread, like the runtime's worker, so pinning is comparable
    thread.start()
    thread.join()
    return result[0]


class PointRig:
    """A layout's workers with warmed sessions and fresh runners on them, as a sweep builds them: the native core
    where it runs (CPU workers, dmda), else the Python scheduler (STARONNX_HOT_PATH=python forces it)."""

    def __init__(self, spec: str, files: list[Path], batch: int, graph: PartGraph | None = None):
        self.workers = parse_workers(spec, CORES, False)
        self.graph = graph or PartGraph.single()
        self.native = not core.ineligible(self.workers, "dmda", False)
        self.executor = core.CoreExecutor(self.workers, files, batch) if self.native else \
            ThreadExecutor(RealLoop(), self.workers, files, batch)

    def calibrated(self, parts: int = 1, runs: int = 12) -> PerfModel:
        """Performance models of every worker, calibrated as a sweep's are before its points (uncalibrated, dmda
        piles a burst's tasks on the first worker: 19,998 of 20,000 in one run of cpu:2x1)."""
        perf = PerfModel()
        for w, worker in enumerate(self.workers):
            self.executor.service_time(w, 1, parts, runs=runs,
                                       on_task=lambda part, s, kind=worker.kind_key: perf.record(part, kind, 1, s))
        return perf

    def run(self, schedule: BatchSchedule, perf: PerfModel | None = None):
        """The schedule's batches through a fresh runner on the warmed workers (no limits): the records. Without
        `perf`, calibrated models."""
        perf = perf if perf is not None else self.calibrated(len(self.graph.deps))
        runner: core.CoreRunner | Scheduler
        if isinstance(self.executor, core.CoreExecutor):
            runner = core.CoreRunner(self.executor, make_policy("dmda"), perf)
        else:
            self.executor.loop = RealLoop()
            runner = Scheduler(self.executor.loop, self.executor, self.workers, make_policy("dmda"), perf,
                               self.graph)
        return runner.run(schedule, Limits(10 ** 9, 1e9))[0]

    def close(self) -> None:
        self.executor.close()


def hot_path() -> str:
    """Which hot path this run measures."""
    why = core.unavailable()
    return "native core" if not why else f"python scheduler ({why})"


def runtime_saturation(path: Path, spec: str, batch: int, batches: int, low_rate: float | None = None):
    """Throughput with every batch released at t0 (the runtime's ceiling), and per-task dispatch delays
    (release -> start) at a low rate where no task waits behind another."""
    rig = PointRig(spec, [path], batch)

    def replay(releases: np.ndarray):
        schedule = BatchSchedule(batch, releases, releases, np.full(batches, batch), np.arange(batches) * batch)
        return rig.run(schedule)

    try:
        records = replay(np.zeros(batches))
        first = min(t.start_s for r in records for t in r.tasks)
        qps = batches * batch / (max(r.end_s for r in records) - first)
        delays = []
        if low_rate:
            records = replay(np.arange(batches) / low_rate)
            delays = [r.tasks[0].start_s - r.actual_release_s for r in records]
        return qps, delays
    finally:
        rig.close()


def saturation_ratios(path: Path, name: str, batch: int, runs: int, rounds: int, cores: int) -> dict:
    """(a): alternate runtime and plain loop `rounds` times, one worker of `cores` cores; best of each."""
    spec = f"cpu:1x{cores}"
    ours, plain = [], []
    for _ in range(rounds):
        ours.append(runtime_saturation(path, spec, batch, runs)[0])
        plain.append(plain_loop_qps(path, CORES[:cores], batch, runs))
    return {"figure": f"(a) saturation {name} b={batch} {spec}: runtime / plain ORT loop",
            "value": round(max(ours) / max(plain), 3), "detail": f"{max(ours):.1f} vs {max(plain):.1f} q/s",
            "target": ">= 0.97"}


def service_ms(path: Path, spec: str, batch: int) -> float:
    """S(N) on the layout's first worker alone, as the sweep measures it."""
    workers = parse_workers(spec, CORES, False)
    executor = ThreadExecutor(RealLoop(), workers, [path], batch)
    try:
        return 1000 * executor.service_time(0, batch, 1, runs=10)
    finally:
        executor.close()


def sweep(model: Path, out: Path, workers: str, batches: tuple[int, ...], rates: list[float], k: int) -> pd.DataFrame:
    settings = SweepSettings(model, out, workers=workers, policy="dmda", batch_sizes=batches, rates=tuple(rates),
                             batches=k, warmup=5, force=True, command=f"runtime_bench {workers}")
    run_sweep(settings)
    return pd.read_csv(out / "points.csv")


def rho_max(points: pd.DataFrame, n: int) -> float:
    good = points[(points.batch_size == n) & ~points.congested.astype(bool) & (points.batches > 0)]
    return float(good.rate_qps.max()) if len(good) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--out", type=Path, default=Path("results/bench/runtime"))
    parser.add_argument("--quick", action="store_true", help="fewer batches and rounds (a smoke run)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console()
    k = 20 if args.quick else 50
    rounds = 1 if args.quick else 3
    big, _ = build_cached(args.model)
    tiny, _ = build_cached("tiny_cnn")
    trivial = trivial_model(args.out / "trivial.onnx")
    rows = []

    console.print("(a) saturation vs a plain ORT loop ...")
    for cores in sorted({1, len(CORES)}):  # all cores: the runtime's own thread has no core of its own
        rows.append(saturation_ratios(big, args.model, 1, 40 if args.quick else 100, rounds, cores))
        rows.append(saturation_ratios(tiny, "tiny_cnn", 1, 500 if args.quick else 2000, rounds, cores))

    console.print("(b) dispatch overhead on a trivial model ...")
    ours, delays = runtime_saturation(trivial, "cpu:1x1", 1, 2000, low_rate=500.0)
    plain = plain_loop_qps(trivial, CORES[:1], 1, 2000)
    rows.append({"figure": "(b) dispatch delay release -> task start, median, trivial model, 500 q/s",
                 "value": round(1e6 * statistics.median(delays), 1),
                 "detail": f"p99 {1e6 * np.percentile(delays, 99):.1f} us",
                 "target": "<= 50 us"})
    rows.append({"figure": "(b) added time per task at saturation, trivial model (1/ours - 1/plain)",
                 "value": round(1e6 * (1 / ours - 1 / plain), 1), "detail": f"{ours:.0f} vs {plain:.0f} tasks/s",
                 "target": "<= 50 us"})

    console.print("(c)-(f) sweeps of cpu:2x1 and cpu:1x2 ...")
    frames = {}
    for layout in ("cpu:2x1", "cpu:1x2"):
        service = {n: service_ms(big, layout, n) for n in (1, 4)}
        workers = len(parse_workers(layout, CORES, False))
        grid = sorted({round(f * n * workers * 1000 / service[n], 1) for n in (1, 4)
                       for f in (0.3, 0.6, 0.8, 0.9, 0.95, 1.0, 1.05, 1.15)})
        frames[layout] = sweep(big, args.out / f"sweep_{layout.replace(':', '_')}", layout, (1, 4), grid, k)
    both = pd.concat(frames.values())
    light = both[pd.to_numeric(both.latency_over_ideal, errors="coerce").notna()].copy()
    light["max_util"] = light.utilisation.map(lambda text: max(float(x.split("=")[1]) for x in text.split()))
    light = light[light.max_util <= 0.8]
    rows.append({"figure": "(c) mean max-latency / ideal at <= 80 % utilisation (mean over points)",
                 "value": round(float(light.latency_over_ideal.astype(float).mean()), 3),
                 "detail": f"{len(light)} points, worst {light.latency_over_ideal.astype(float).max():.3f}",
                 "target": "<= 1.05"})
    for layout, points in frames.items():
        workers = len(parse_workers(layout, CORES, False))
        for n in (1, 4):
            s_ms = float(points[points.batch_size == n].service_ms.dropna().median())
            ideal = n * workers * 1000 / s_ms
            rows.append({"figure": f"(d) rho_max / ideal w N / S(N), {layout} N={n}",
                         "value": round(rho_max(points, n) / ideal, 3),
                         "detail": f"{rho_max(points, n):g} vs {ideal:.1f} q/s (grid steps of 5-10 %)",
                         "target": ">= 0.95"})
    batches_csv = pd.concat(pd.read_csv(args.out / f"sweep_{x.replace(':', '_')}" / "batches.csv") for x in frames)
    late = (batches_csv.actual_release_s - batches_csv.scheduled_release_s) * 1e6
    rows.append({"figure": "(e) release lateness p99 over every batch of both sweeps (us)",
                 "value": round(float(np.percentile(late, 99)), 1),
                 "detail": f"median {np.median(late):.1f} us, max {late.max():.0f} us, {len(late)} batches",
                 "target": "<= 100 us"})
    a, b = frames["cpu:2x1"], frames["cpu:1x2"]
    for n in (1, 4):
        rows.append({"figure": f"(f) rho_max cpu:2x1 / cpu:1x2, N={n}",
                     "value": round(rho_max(a, n) / rho_max(b, n), 3),
                     "detail": f"{rho_max(a, n):g} vs {rho_max(b, n):g} q/s", "target": "(report)"})
        common = sorted(set(a[(a.batch_size == n) & ~a.congested.astype(bool)].rate_qps)
                        & set(b[(b.batch_size == n) & ~b.congested.astype(bool)].rate_qps))
        for rate in common[:1]:
            la = float(a[(a.batch_size == n) & (a.rate_qps == rate)].mean_max_latency_ms.iloc[0])
            lb = float(b[(b.batch_size == n) & (b.rate_qps == rate)].mean_max_latency_ms.iloc[0])
            rows.append({"figure": f"(f) mean max-latency cpu:2x1 / cpu:1x2, N={n} at {rate:g} q/s",
                         "value": round(la / lb, 3), "detail": f"{la:.2f} vs {lb:.2f} ms", "target": "(report)"})

    table = Table(title=f"runtime bench ({len(CORES)} cores, ORT {ort.__version__})")
    for column in ("figure", "value", "detail", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["figure"], str(row["value"]), row["detail"], row["target"])
    console.print(table)
    pd.DataFrame(rows).to_csv(args.out / "runtime_bench.csv", index=False)
    (args.out / "runtime_bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    console.print(f"written {args.out / 'runtime_bench.csv'}")


if __name__ == "__main__":
    main()
