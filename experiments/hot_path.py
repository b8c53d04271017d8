"""Where the microseconds of one task go in the real runtime: per-stage timestamps of the path
release -> policy -> hand-over -> worker picks it up -> ONNX Runtime -> completion -> bookkeeping done.

Runs a trivial model (one Add) and tiny_cnn through the real scheduler and worker threads (cpu:1x1 and cpu:2x1)
at a low fixed rate (no task waits behind another) and with every batch released at once (saturation), with
each stage stamped by wrappers around the executor's queues, the runner and the loop (nothing in the runtime
itself is changed). Prints the median and p99 of each stage's duration and writes hot_path.json.
Usage: python experiments/hot_path.py [--out results/bench/hot_path] [--batches 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_bench import trivial_model  # noqa: E402

from staronnx_cli.load.schedule import BatchSchedule  # noqa: E402
from staronnx_cli.runtime.executors import ThreadExecutor  # noqa: E402
from staronnx_cli.runtime.loop import RealLoop  # noqa: E402
from staronnx_cli.runtime.perfmodel import PerfModel  # noqa: E402
from staronnx_cli.runtime.policies import make_policy  # noqa: E402
from staronnx_cli.runtime.scheduler import Limits, PartGraph, Scheduler  # noqa: E402
from staronnx_cli.runtime.workers import parse_workers  # noqa: E402
from staronnx_cli.zoo.cache import build_cached  # noqa: E402

CORES = sorted(os.sched_getaffinity(0))
STAGES = (("release late", "scheduled", "released"), ("policy + hand-over", "released", "handed"),
          ("worker wakes, takes it", "handed", "picked"), ("inputs looked up", "picked", "run0"),
          ("ONNX Runtime run", "run0", "run1"), ("outputs kept, lock taken", "run1", "locked"),
          ("completion bookkeeping", "locked", "done"))


class StampedInbox:
    """A worker's inbox that stamps when a task was put and when the worker took it, and tells the stamped runner
    which batch its worker took last (a worker runs one task at a time)."""

    def __init__(self, inner, stamps, current):
        self.inner, self.stamps, self.current = inner, stamps, current

    def put(self, item):
        if item is not None and item[0] >= 0:
            self.stamps.setdefault(item[0], {})["handed"] = time.perf_counter()
        self.inner.put(item)

    def get(self, *args, **kwargs):
        item = self.inner.get(*args, **kwargs)
        if item is not None and item[0] >= 0:
            self.stamps[item[0]]["picked"] = time.perf_counter()
            self.current[0] = item[0]
        return item

    def get_nowait(self):
        return self.get(block=False)

    def empty(self):
        return self.inner.empty()


class StampedRunner:
    def __init__(self, inner, stamps, current):
        self.inner, self.stamps, self.current = inner, stamps, current
        self.input_names, self.output_names = inner.input_names, inner.output_names

    def run(self, part, feeds):
        k = self.current[0]
        self.stamps[k]["run0"] = time.perf_counter()
        out = self.inner.run(part, feeds)
        self.stamps[k]["run1"] = time.perf_counter()
        return out


class StampedLoop(RealLoop):
    def __init__(self, stamps):
        super().__init__()
        self.stamps = stamps

    def deliver(self, callback, *args):
        with self.lock:
            k = args[1]
            self.stamps[k]["locked"] = time.perf_counter()
            callback(*args)
            self.stamps[k]["done"] = time.perf_counter()


def measure(path: Path, spec: str, releases: np.ndarray) -> dict[str, tuple[float, float]]:
    workers = parse_workers(spec, CORES, False)
    executor = ThreadExecutor(RealLoop(), workers, [path], 1)
    stamps: dict[int, dict[str, float]] = {}
    try:
        loop = StampedLoop(stamps)
        executor.loop = loop
        for i, runners in enumerate(executor.runners):
            current = [0]
            assert runners is not None  # every worker's runners are made before its thread starts
            executor.inboxes[i] = cast(Any, StampedInbox(executor.inboxes[i], stamps, current))  # a queue's stand-in
            runners[:] = [StampedRunner(r, stamps, current) for r in runners]  # the list its thread holds
        n = len(releases)
        schedule = BatchSchedule(1, releases, releases, np.ones(n, dtype=np.int64), np.arange(n))
        scheduler = Scheduler(loop, executor, workers, make_policy("dmda"), PerfModel(), PartGraph.single())
        records, _ = scheduler.run(schedule, Limits(10 ** 9, 1e9))
        t0 = loop._t0
        for r in records:
            stamps[r.index]["scheduled"] = t0 + r.scheduled_release_s
            stamps[r.index]["released"] = t0 + r.actual_release_s
        span = max(r.end_s for r in records) - min(t.start_s for r in records for t in r.tasks)
    finally:
        executor.close()
    result = {}
    for name, a, b in STAGES:
        d = np.array([s[b] - s[a] for s in stamps.values() if a in s and b in s]) * 1e6
        result[name] = (float(np.median(d)), float(np.percentile(d, 99)))
    result["tasks/s"] = (len(records) / span, float("nan"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/hot_path"))
    parser.add_argument("--batches", type=int, default=3000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = {"trivial": trivial_model(args.out / "trivial.onnx"), "tiny_cnn": build_cached("tiny_cnn")[0]}
    columns, results = [], {}
    for name, path in models.items():
        for spec in ("cpu:1x1", "cpu:2x1"):
            for load, releases in (("500 q/s", np.arange(args.batches) / 500.0),
                                   ("all at once", np.zeros(args.batches))):
                key = f"{name} {spec} {load}"
                results[key] = measure(path, spec, releases)
                columns.append(key)
    table = Table(title=f"one task's path, median (p99) us, {len(CORES)} cores")
    table.add_column("stage")
    for key in columns:
        table.add_column(key.replace(" ", "\n", 2), justify="right")
    for stage in [s for s, _, _ in STAGES] + ["tasks/s"]:
        table.add_row(stage, *[f"{results[k][stage][0]:.1f}" + ("" if stage == "tasks/s" else
                                                                  f" ({results[k][stage][1]:.0f})")
                               for k in columns])
    Console().print(table)
    (args.out / "hot_path.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
