"""Benchmark: simulated tasks per second of wall time (issue 6's target: >= 100,000).

The real scheduler on the virtual clock with the platform executor: a 2-part chain on one GPU and two CPU
workers (dmda), and a whole model on two CPU workers (eager), batch 4, near saturation, online congestion
watch on. Usage: python experiments/sim_bench.py [--batches 50000]
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from staronnx_cli.load.schedule import fixed_rate_batches
from staronnx_cli.runtime.loop import VirtualLoop
from staronnx_cli.runtime.perfmodel import PerfModel
from staronnx_cli.runtime.platform import parse_platform
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.scheduler import Limits, PartGraph, Scheduler
from staronnx_cli.runtime.simtimes import PartTimes
from staronnx_cli.runtime.simulated import SimExecutor
from staronnx_cli.sweep.point import latency_watch
from staronnx_cli.systems.sim import platform_workers, seeded_perfmodel

GPU_AND_CPUS = {"workers": [{"kind": "cuda", "count": 1}, {"kind": "cpu", "count": 2, "cores": 8}],
                "overhead": {"task_us": 20.0}}
CPUS = {"workers": [{"kind": "cpu", "count": 2, "cores": 1}]}


def case(platform_table: dict, parts: int, times: dict, policy: str, rate: float, batches: int) -> tuple[int, float]:
    platform = parse_platform(platform_table)
    workers = platform_workers(platform)
    graph = (PartGraph([[], [0]], [{-1: 600_000}, {0: 100_000}], [0, 4000]) if parts == 2
             else PartGraph([[]], [{-1: 600_000}], [4000]))
    part_times = PartTimes({key: {4: (value, value / 20)} for key, value in times.items()})
    loop = VirtualLoop()
    executor = SimExecutor(loop, workers, platform, part_times, graph)
    perf = seeded_perfmodel(part_times, workers, parts, [4]) if policy == "dmda" else PerfModel()
    scheduler = Scheduler(loop, executor, workers, make_policy(policy), perf, graph)
    start = time.perf_counter()
    records, _ = scheduler.run(fixed_rate_batches(rate, 4, batches), Limits(10 ** 9, 1e12), latency_watch(5))
    elapsed = time.perf_counter() - start
    return sum(len(r.tasks) for r in records), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50_000)
    args = parser.parse_args()
    table = Table(title="simulated engine speed")
    for column in ("case", "tasks", "wall s", "tasks per s", "target"):
        table.add_column(column)
    cases: dict[str, tuple] = {
        "2 parts, cuda + 2 cpu, dmda": (GPU_AND_CPUS, 2, {(0, "cuda"): 0.004, (1, "cuda"): 0.0005,
                                                          (0, "cpu:8"): 0.030, (1, "cpu:8"): 0.004}, "dmda", 900.0),
        "whole, 2 cpu, eager": (CPUS, 1, {(0, "cpu:1"): 0.010}, "eager", 760.0),
    }
    for name, (platform, parts, times, policy, rate) in cases.items():
        tasks, elapsed = case(platform, parts, times, policy, rate, args.batches)
        table.add_row(name, str(tasks), f"{elapsed:.2f}", f"{tasks / elapsed:,.0f}", ">= 100,000")
    Console().print(table)


if __name__ == "__main__":
    main()
