"""`staronnx platform from-run`: this machine as a platform file, from a real run's files and models.

Everything comes from the run's own files, never from the host's shared performance-model cache (which later
runs change): workers from run.json; task times per part, worker kind and batch size from batches.csv (mean and
std of the measured batches' tasks, under the run's own load), and, for a (part, kind) the run never placed a
task on, from run.json's calibration (what each kind ran alone before the points); the per-task overhead from
batches.csv: the median delay from a batch's release to its first task's start when the worker it went to had
nothing to do (the dispatch path: loop, queue, thread wake-up).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..inputfile import DANGLING, dangling
from ..kinds import device_of_worker, kind_of_worker
from ..results.read import read_batches, versioned_meta
from ..results.runmeta import RunMeta
from ..results.schema import complete_text, flags
from ..results.tasks import task_table
from ..runtime.platform import Platform, TimeRow, groups_of
from ..runtime.workers import WorkerSpec


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

def _read_batches(path: Path) -> pd.DataFrame:
    """The measured batches of batches.csv (none: an empty frame)."""
    if not path.exists():
        return pd.DataFrame()
    if not complete_text(path).strip():
        return pd.DataFrame()
    frame = read_batches(path)
    if frame.empty or "measured" not in frame:
        return frame.iloc[0:0]
    return frame[flags(frame.measured)]


def _task_times(batches: pd.DataFrame, kind_of: dict[str, str], parts: int) -> dict[tuple, TimeRow]:
    """(part, kind, N) -> mean and std of the tasks the run's measured batches ran there: full batches only (a
    batch closed early by --max-queue-delay holds fewer than N queries, and its time is not S(N))."""
    found: dict[tuple, TimeRow] = {}
    if batches.empty:
        return found
    if "queries" in batches:
        queries = pd.to_numeric(batches.queries, errors="coerce")
        batches = batches[queries.isna() | (queries == batches.batch_size)]
    for n, group in batches.groupby("batch_size"):
        tasks = task_table(group)
        tasks = tasks.assign(kind=tasks.worker.map(kind_of), ms=1000 * (tasks.end_s - tasks.start_s))
        tasks = tasks[tasks.kind.notna() & (tasks.part < parts) & np.isfinite(tasks.ms) & (tasks.ms >= 0)]
        for (part, kind), ms in tasks.groupby(["part", "kind"]).ms:
            std = float(ms.std(ddof=0)) if len(ms) > 1 else 0.0
            found[(int(part), kind, int(n))] = TimeRow(int(part), kind, int(n), round(float(ms.mean()), 6),
                                                       round(std, 6))
    return found


def _calibrated_times(calibration, kinds: set[str], parts: int) -> dict[tuple, TimeRow]:
    """(part, kind, N) -> the median time of each part that a worker kind ran alone before the points."""
    found: dict[tuple, TimeRow] = {}
    for c in calibration if isinstance(calibration, list) else []:
        try:
            n, kind, part_ms = int(c["batch_size"]), str(c["kind"]), c.get("part_ms") or {}
            for part, ms in part_ms.items():
                if kind in kinds and 0 <= int(part) < parts and 0 <= float(ms) < 1e9:
                    found[(int(part), kind, n)] = TimeRow(int(part), kind, n, round(float(ms), 6))
        except (TypeError, KeyError, ValueError, AttributeError):
            continue  # an edited entry: the others still count
    return found


def measured_link(recorded) -> tuple[float, float] | None:
    """run.json's `transfer` (bandwidth GB/s, latency us) when it is usable, else None (the platform's default)."""
    try:
        bandwidth, latency = float(recorded["bandwidth_GBps"]), float(recorded["latency_us"])
    except (TypeError, KeyError, ValueError):
        return None
    return (bandwidth, latency) if bandwidth > 0 and bandwidth < float("inf") and 0 <= latency < 1e6 else None


def platform_from_run(run: Path) -> Platform:
    meta_file = run / "run.json"
    if dangling(run):
        raise UserError(f"'{run}' is a symbolic link that {DANGLING}: give the -o directory of a real sweep")
    if not meta_file.exists():
        raise UserError(f"'{run}' is not a run directory (no run.json): give the -o directory of a real sweep")
    meta = RunMeta.from_json(versioned_meta(run), meta_file)
    if meta.engine == "sim":
        raise UserError(f"run '{run}' was simulated: capture a platform from a real run (--engine real)")
    if meta.get("mix"):  # its models' parts share numbers: one model's platform would mix them
        raise UserError(f"run '{run}' is a mix: a platform describes one target's parts; capture one from a sweep of "
                        "each model, or give the simulator [[speeds]] (docs/sim.md)")
    groups = groups_of([WorkerSpec(name, kind_of_worker(name), tuple(cores), device_of_worker(name))
                        for name, cores in meta.worker_cores.items()])
    kinds = {g.kind_key for g in groups}
    parts = int(meta.parts)
    batches = _read_batches(run / "batches.csv")
    kind_of = {name: kind_of_worker(name).key(len(cores))
               for name, cores in meta.worker_cores.items()}
    measured = _task_times(batches, kind_of, parts)
    alone = {key: row for key, row in _calibrated_times(meta.calibration, kinds, parts).items()
             if key not in measured}
    times = sorted({**alone, **measured}.values(), key=lambda t: (t.part, t.kind, t.batch))
    if not times:
        raise UserError(f"run '{run}' recorded no task time (no measured batch in batches.csv, no calibration in "
                        "run.json): sweep again, then capture")
    overhead = dispatch_overhead_us(batches) if len(batches) else 0.0
    link = measured_link(meta.transfer)
    notes = (f"captured from {run} ({meta.cpu}, {meta.cores if meta.cores is not None else '?'} cores, ONNX Runtime "
             f"{meta.onnxruntime}, model {meta.model_name or '?'}, {parts} part(s)); task times: the run's measured "
             f"batches ({len(measured)} (part, kind, N))"
             + (f" and its calibration alone ({len(alone)} the run never placed a task on)" if alone else "")
             + "; task_us: " + ("median dispatch delay of idle workers in batches.csv; " if len(batches) else
                                "0 (no measured batch in batches.csv); ")
             + ("[transfer]: what the run's GPU workers measured (host->device copies)" if link else
                "[transfer]: the default (the run measured no GPU link)"))
    platform = Platform(f"{meta.host or 'this host'}: {meta.workers}", groups, task_us=round(overhead, 3),
                        times=times, notes=notes, target_sha256=meta.plan_sha256 or meta.model_sha256,
                        model_sha256=meta.model_sha256)
    return replace(platform, bandwidth_GBps=link[0], latency_us=link[1]) if link else platform
