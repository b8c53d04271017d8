"""`staronnx platform from-run`: this machine as a platform file, from a real run's files and models.

Workers come from run.json, task times from the performance models the run used (per part, worker kind
and batch size: mean and std of what the worker threads measured, under the run's own load), and the
per-task overhead from batches.csv: the median delay from a batch's release to its first task's start
when the worker it went to had nothing to do (the dispatch path: loop, queue, thread wake-up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..results.runmeta import RunMeta
from ..results.schema import read_run_meta
from ..results.tasks import task_table
from ..runtime.perfmodel import PerfModel
from ..runtime.platform import Platform, TimeRow, WorkerGroup


def dispatch_overhead_us(batches: pd.DataFrame) -> float:
    """Median release -> start of a batch's first task, over batches whose worker was idle at release."""
    delays = []
    for _, point in batches.groupby(["batch_size", "rate_qps"], sort=False):
        release = dict(zip(point.batch_index, point.actual_release_s))
        busy_until: dict[str, float] = {}
        for index, tasks in task_table(point).groupby("batch_index", sort=True):
            tasks = tasks.sort_values("part")
            first = tasks.iloc[0]
            if busy_until.get(first.worker, -1.0) <= release[index]:
                delays.append(first.start_s - release[index])
            for t in tasks.itertuples():
                busy_until[t.worker] = max(busy_until.get(t.worker, -1.0), t.end_s)
    return float(1e6 * np.median(delays)) if delays else 0.0

def measured_link(recorded) -> tuple[float, float] | None:
    """run.json's `transfer` (bandwidth GB/s, latency us) when it is usable, else None (the platform's default)."""
    try:
        bandwidth, latency = float(recorded["bandwidth_GBps"]), float(recorded["latency_us"])
    except (TypeError, KeyError, ValueError):
        return None
    return (bandwidth, latency) if bandwidth > 0 and bandwidth < float("inf") and 0 <= latency < 1e6 else None


def platform_from_run(run: Path) -> Platform:
    meta_file = run / "run.json"
    if not meta_file.exists():
        raise UserError(f"'{run}' is not a run directory (no run.json): give the -o directory of a real sweep")
    meta = RunMeta.from_json(read_run_meta(meta_file), meta_file)
    if meta.engine != "real":
        raise UserError(f"run '{run}' was simulated: capture a platform from a real run (--engine real)")
    perf_file = Path(meta.perfmodel)
    if not perf_file.is_file():
        raise UserError(f"the performance models of run '{run}' ({perf_file}) are gone: sweep again on this machine")
    perf = PerfModel.load(perf_file)
    sizes: dict[tuple[str, int], int] = {}
    for name, cores in meta.worker_cores.items():
        kind = "cuda" if name.startswith("cuda") else "cpu"
        key = (kind, len(cores) if kind == "cpu" else 1)
        sizes[key] = sizes.get(key, 0) + 1
    groups = [WorkerGroup(kind, count, cores) for (kind, cores), count in sizes.items()]
    kinds = {g.kind_key for g in groups}
    parts = int(meta.parts)
    times = [TimeRow(p, k, b, round(1000 * s.mean, 6), round(1000 * s.std, 6)) for (p, k, b), s in
             sorted(perf.stats.items()) if k in kinds and p < parts and s.count > 0]
    if not times:
        raise UserError(f"the performance models of run '{run}' have no time for its workers: sweep again")
    batches_file = run / "batches.csv"
    overhead = dispatch_overhead_us(pd.read_csv(batches_file)) if batches_file.exists() else 0.0
    link = measured_link(meta.get("transfer"))
    notes = (f"captured from {run} ({meta.cpu}, {meta.cores if meta.cores is not None else '?'} cores, ONNX Runtime "
             f"{meta.onnxruntime}, model {meta.model_name or '?'}, {parts} part(s)); task times: "
             f"the run's performance models; task_us: median dispatch delay of idle workers in batches.csv; "
             + ("[transfer]: what the run's GPU workers measured (host->device copies)" if link else
                "[transfer]: the default (the run measured no GPU link)"))
    figures = {"bandwidth_GBps": link[0], "latency_us": link[1]} if link else {}
    return Platform(f"{meta.host or 'this host'}: {meta.workers}", groups, **figures, task_us=round(overhead, 3),
                    times=times, notes=notes, target_sha256=meta.plan_sha256 or meta.model_sha256,
                    model_sha256=meta.model_sha256)
