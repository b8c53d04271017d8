"""The runtime's own cost per task (issue 25), every figure from this one run, side by side with what it is held to.

- tasks/s of the runtime (every batch released at once, dmda) and of a plain ONNX Runtime loop on a trivial model
  (one Add), with 1 and 2 one-core workers; the added time per task; the 2-worker / 1-worker ratio
- dispatch delay (release -> task start) at 500 q/s, median and p99
- tiny_cnn at batch 1, saturation / plain loop, on cpu:1x1 and cpu:1x2
- what a user sees: rho_max of `staronnx sweep MODEL --workers cpu:1x1 --batch 1` (auto rates) over a bare ORT loop's
  queries/s on the same core, and over `--system native`'s rho_max, for tiny_cnn and the trivial model
- a 3-part split of tiny_cnn on cpu:1x1,cpu:1x1: saturation over the whole model's on cpu:1x1
- googlenet N=1 at 10 q/s on cpu:1x2: mean max-latency over an isolated session's median run (same threads)
- release lateness p99 over a googlenet sweep, quiet, and with another process busy on one core
- Poisson arrivals at 70 % of capacity: googlenet and mobilenet_v3_small points measured, not congested
- a projection: the GPU batches/s two streams can finish at the H100's measured S(N), against the tasks/s the
  Python scheduler (where GPU workers run) allows with two workers
Usage: python experiments/overhead_bench.py [--out results/bench/overhead] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_bench import CORES, PointRig, hot_path, plain_loop_qps, runtime_saturation, trivial_model  # noqa: E402

from staronnx_cli.load.schedule import BatchSchedule  # noqa: E402
from staronnx_cli.runtime.workers import parse_workers  # noqa: E402
from staronnx_cli.systems.native import NativeSession  # noqa: E402
from staronnx_cli.systems.target import load_target  # noqa: E402
from staronnx_cli.zoo.cache import build_cached  # noqa: E402

H100_GRAPH_S_MS = {1: 0.87, 8: 1.45, 32: 3.49}
"""GoogLeNet on one H100 stream, CUDA graph and I/O binding, median per batch (measured 2026-11-23, README)."""


def staronnx(*args, answered_or_not: bool = False) -> None:
    """One command; with `answered_or_not`, a sweep that found no uncongested point (exit 3) is a measurement too."""
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", *map(str, args)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    if done.returncode not in ((0, 3) if answered_or_not else (0,)):
        raise subprocess.CalledProcessError(done.returncode, ["staronnx", *map(str, args)])


def rho_max(run: Path) -> float:
    points = pd.read_csv(run / "points.csv")
    fine = points[~points.congested.astype(str).str.lower().isin(["true", "1"]) & (points.batches > 0)]
    return float(fine.rate_qps.max()) if len(fine) else float("nan")


def split_saturation(plan: Path, spec: str, batches: int) -> float:
    """Tasks of a plan's parts, every batch released at once, through the runtime: batches/s."""
    target = load_target(plan)
    rig = PointRig(spec, target.part_files, 1, target.graph)
    try:
        releases = np.zeros(batches)
        schedule = BatchSchedule(1, releases, releases, np.ones(batches, dtype=np.int64), np.arange(batches))
        records = rig.run(schedule)
        first = min(t.start_s for r in records for t in r.tasks)
        return batches / (max(r.end_s for r in records) - first)
    finally:
        rig.close()


def isolated_run_ms(model: Path, spec: str, n: int, runs: int) -> float:
    """An isolated session's median run with the worker's threads and cores (the native baseline's session)."""
    session = NativeSession(parse_workers(spec, CORES, False)[0], model, n)
    try:
        return 1000 * session.service_time(n, runs=runs)
    finally:
        session.close()


def lateness_p99_us(run: Path) -> float:
    batches = pd.read_csv(run / "batches.csv")
    return float(np.percentile((batches.actual_release_s - batches.scheduled_release_s) * 1e6, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/overhead"))
    parser.add_argument("--quick", action="store_true", help="fewer tasks and batches (a smoke run)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    tasks = 3000 if args.quick else 20000
    trivial = trivial_model(out / "trivial.onnx")
    tiny, _ = build_cached("tiny_cnn")
    googlenet, _ = build_cached("googlenet")
    rows: list[dict] = []

    def row(figure, value, detail, target, ok=None):
        rows.append({"figure": figure, "value": value, "detail": detail, "target": target,
                     "met": "" if ok is None else ("yes" if ok else "no")})

    console.print("tasks/s on the trivial model ...")
    # this VM flips between a fast and a slow state (an ORT run of the Add 1.5 or 2.4 us, at times on one of the two
    # cores only, for tens of ms): the best of five runs, interleaved, compares like with like
    ours1, ours2, plain1 = (max(r) for r in zip(*((runtime_saturation(trivial, "cpu:1x1", 1, tasks)[0],
                                                    runtime_saturation(trivial, "cpu:2x1", 1, tasks)[0],
                                                    plain_loop_qps(trivial, CORES[:1], 1, tasks)) for _ in range(5))))
    added_us = 1e6 * (1 / ours1 - 1 / plain1)
    row("trivial model, cpu:1x1: runtime / plain ORT loop (tasks/s)", round(ours1 / plain1, 3),
        f"{ours1:,.0f} vs {plain1:,.0f}", "(report)")
    row("added time per task at saturation, trivial, cpu:1x1 (us)", round(added_us, 1),
        "1 / runtime - 1 / plain loop", "<= 10", added_us <= 10)
    row("trivial model, cpu:2x1 / cpu:1x1 tasks/s (runtime)", round(ours2 / ours1, 3),
        f"{ours2:,.0f} vs {ours1:,.0f}", ">= 1.6", ours2 / ours1 >= 1.6)

    console.print("dispatch delay at 500 q/s ...")
    _, delays = runtime_saturation(trivial, "cpu:1x1", 1, 1000 if args.quick else 3000, low_rate=500.0)
    median, p99 = 1e6 * statistics.median(delays), 1e6 * float(np.percentile(delays, 99))
    row("dispatch delay release -> task start, trivial, 500 q/s: median (us)", round(median, 1),
        f"p99 {p99:.0f} us", "<= 15 (p99 <= 150)", median <= 15 and p99 <= 150)

    console.print("tiny_cnn saturation ...")
    for spec, cores in (("cpu:1x1", 1), ("cpu:1x2", min(2, len(CORES)))):
        ours, plain = (max(r) for r in zip(*((runtime_saturation(tiny, spec, 1, tasks // 2)[0],
                                               plain_loop_qps(tiny, CORES[:cores], 1, tasks // 2)) for _ in range(2))))
        row(f"tiny_cnn b=1 saturation, {spec}: runtime / plain ORT loop", round(ours / plain, 3),
            f"{ours:,.0f} vs {plain:,.0f} q/s", ">= 0.9", ours / plain >= 0.9)

    console.print("what a user sees: sweeps with --rate auto ...")
    for name, model, floor in (("tiny_cnn", tiny, 0.85), ("trivial", trivial, 0.5)):
        figures = []
        # the best of two runs each, interleaved: the VM's state flips within seconds (a tiny_cnn run 34-47 us)
        for rep in range(2):
            ours_run, native_run = out / f"auto_{name}_{rep}", out / f"auto_{name}_native_{rep}"
            staronnx("sweep", model, "--workers", "cpu:1x1", "--batch", 1, "-o", ours_run, "--force")
            staronnx("sweep", model, "--system", "native", "--workers", "cpu:1x1", "--batch", 1, "-o", native_run,
                     "--force")
            figures.append((rho_max(ours_run), rho_max(native_run), plain_loop_qps(model, CORES[:1], 1, tasks // 2)))
        ours, native, bare = (max(f) for f in zip(*figures))
        row(f"rho_max {name}, cpu:1x1, b=1: staronnx / bare ORT loop", round(ours / bare, 3),
            f"{ours:,.0f} vs {bare:,.0f} q/s", f">= {floor}", ours / bare >= floor)
        row(f"rho_max {name}, cpu:1x1, b=1: staronnx / --system native", round(ours / native, 3),
            f"{ours:,.0f} vs {native:,.0f} q/s", ">= 1.0", ours >= native)

    console.print("a 3-part split of tiny_cnn ...")
    plan = out / "tiny_cnn_3parts"
    staronnx("split", tiny, "--offload", 0.5, "--parts", 3, "--method", "topo", "-o", plan, "--force")
    split, whole = (max(r) for r in zip(*((split_saturation(plan, "cpu:1x1,cpu:1x1", tasks // 2),
                                           runtime_saturation(tiny, "cpu:1x1", 1, tasks // 2)[0]) for _ in range(2))))
    row("tiny_cnn 3 parts on cpu:1x1,cpu:1x1 / whole on cpu:1x1 (saturation)", round(split / whole, 3),
        f"{split:,.0f} vs {whole:,.0f} batches/s", ">= 0.9", split / whole >= 0.9)

    console.print("googlenet at low load, then a sweep for release lateness ...")
    pairs: list[tuple[float, float]] = []
    for rep in range(2):  # the best of two each, interleaved (googlenet's run moves by 25 % with the VM's state)
        low = out / f"googlenet_low_{rep}"
        staronnx("sweep", googlenet, "--workers", "cpu:1x2", "--policy", "eager", "--batch", 1, "--rate", 10,
                 "--batches", 20 if args.quick else 40, "--warmup", 3, "-o", low, "--force")
        pairs.append((float(pd.read_csv(low / "points.csv").mean_max_latency_ms.iloc[0]),
                        isolated_run_ms(googlenet, "cpu:1x2", 1, 20)))
    measured, isolated = (min(f) for f in zip(*pairs))
    row("googlenet N=1, 10 q/s, cpu:1x2: mean max-latency / isolated median run", round(measured / isolated, 3),
        f"{measured:.1f} vs {isolated:.1f} ms", "<= 1.1", measured / isolated <= 1.1)
    capacity = 1000 / isolated
    rates = ",".join(f"{f * capacity:.1f}" for f in (0.3, 0.6, 0.8))
    quiet = out / "googlenet_sweep"
    staronnx("sweep", googlenet, "--workers", "cpu:1x2", "--batch", 1, "--rate", rates, "--batches", 30,
             "--warmup", 3, "-o", quiet, "--force")
    late = lateness_p99_us(quiet)
    row("release lateness p99, googlenet sweep, quiet (us)", round(late, 1), f"rates {rates} q/s", "<= 100",
        late <= 100)
    neighbour = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{CORES[0]}}})\n"
                                  "while True: pass"])
    try:
        busy = out / "googlenet_sweep_neighbour"
        staronnx("sweep", googlenet, "--workers", "cpu:1x2", "--batch", 1, "--rate", rates, "--batches", 30,
                 "--warmup", 3, "-o", busy, "--force")
    finally:
        neighbour.kill()
    late = lateness_p99_us(busy)
    row("release lateness p99, googlenet sweep, a process busy on one core (us)", round(late, 1),
        f"core {CORES[0]} taken", "<= 1000", late <= 1000)

    console.print("Poisson arrivals at 70 % of capacity ...")
    mobilenet, _ = build_cached("mobilenet_v3_small")
    for name, model in (("googlenet", googlenet), ("mobilenet_v3_small", mobilenet)):
        capacity = 1000 / isolated_run_ms(model, "cpu:1x2", 1, 10)
        run = out / f"poisson_{name}"
        staronnx("sweep", model, "--workers", "cpu:1x2", "--batch", 1, "--rate", f"{0.7 * capacity:.1f}",
                 "--arrival", "poisson", "--batches", 30, "--warmup", 3, "--seed", 1, "-o", run, "--force",
                 answered_or_not=True)  # a congested point is this row's finding, not the bench's failure
        points = pd.read_csv(run / "points.csv")
        congested = points.congested.astype(str).str.lower().isin(["true", "1"])
        row(f"Poisson at 70 % of capacity, {name}, cpu:1x2: points measured", int((~congested).sum()),
            f"of {len(points)}; {points.reason.fillna('').iloc[0][:60]}", "all", not congested.any())

    # GPU workers run on the Python scheduler, not the native core: the projection is that path's tasks/s, two
    # workers (as cuda:0x2) on the trivial model, all released at once
    os.environ["STARONNX_HOT_PATH"] = "python"
    try:
        python2 = max(runtime_saturation(trivial, "cpu:2x1", 1, tasks // 4)[0] for _ in range(3))
    finally:
        del os.environ["STARONNX_HOT_PATH"]
    for n, s_ms in H100_GRAPH_S_MS.items():
        stream = 1000 / s_ms
        for parts in (1, 3):
            cap = python2 / parts
            row(f"projection: H100 googlenet N={n}, 2 streams, {parts} part(s): GPU workers' scheduler / GPU "
                "(batches/s)", round(cap / (2 * stream), 2),
                f"GPU {2 * stream:,.0f}/s, scheduler {cap:,.0f}/s", "> 1: the GPU sets saturation", cap > 2 * stream)

    table = Table(title=f"the runtime's cost per task ({len(CORES)} cores, {hot_path()}, "
                        f"{time.strftime('%Y-%m-%d %H:%M')})")
    for column in ("figure", "value", "detail", "target", "met"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["figure"], str(r["value"]), r["detail"], r["target"], r["met"])
    console.print(table)
    pd.DataFrame(rows).to_csv(out / "overhead_bench.csv", index=False)
    (out / "overhead_bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    console.print(f"written {out / 'overhead_bench.csv'}")


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "200")
    main()
