"""A sweep: batch sizes x rates, one point at a time, each point's rows appended as soon as it finishes."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from .. import __version__, modelio
from ..errors import UserError
from ..load.schedule import fixed_rate, fixed_rate_batches
from ..machine import machine_info
from ..metrics.points import congestion, summarize
from ..ortenv import cuda_status
from ..runtime.executors import ThreadExecutor
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel
from ..runtime.policies import make_policy
from ..runtime.scheduler import Limits, PartGraph, Scheduler
from ..runtime.workers import parse_workers
from ..split.plan import read_plan
from .schema import BATCH_COLUMNS, POINT_COLUMNS, RUN_SCHEMA_VERSION, append_rows


@dataclass
class SweepSettings:
    target: Path  # a model file or a plan directory
    output: Path
    workers: str = "cpu:1x2"
    policy: str = "dmda"
    batch_sizes: tuple[int, ...] = (1, 2, 4)
    rates: tuple[float, ...] = (10.0,)
    batches: int = 50
    warmup: int = 5
    system: str = "staronnx"
    seed: int = 0
    resume: bool = False
    force: bool = False
    command: str = ""


@dataclass
class Target:
    part_files: list[Path]
    graph: PartGraph
    model_sha256: str
    plan_sha256: str


def load_target(path: Path) -> Target:
    if path.is_dir():
        plan = read_plan(path)
        files = [path / p.file for p in plan.parts]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise UserError(f"plan '{path}' lacks its part file {missing[0]}: recreate it with 'staronnx split'")
        source = Path(plan.source_model)
        if source.exists() and modelio.sha256_of(source) != plan.source_sha256:
            raise UserError(f"plan '{path}' was made from another version of {source} (sha256 differs): "
                            "split the model again")
        deps = [sorted({e.source for e in plan.edges if e.target == i and e.source >= 0}) for i in range(len(files))]
        sizes = [{e.source: e.bytes_per_sample for e in plan.edges if e.target == i} for i in range(len(files))]
        return Target(files, PartGraph(deps, sizes), plan.source_sha256, modelio.sha256_of(path / "plan.json"))
    model = modelio.load_model(path, with_weights=False)
    specs = modelio.input_specs(model)
    per_sample = sum(int(np.prod(s.shape)) * s.dtype.itemsize for s in specs)
    return Target([path], PartGraph([[]], [{-1: per_sample}]), modelio.sha256_of(path), "")


def check_settings(s: SweepSettings) -> None:
    if any(b < 1 for b in s.batch_sizes):
        raise UserError(f"--batch {list(s.batch_sizes)}: batch sizes must be at least 1")
    if s.batches < 2:
        raise UserError(f"--batches {s.batches}: at least 2 measured batches per point (the paper uses 50)")
    if s.warmup < 0:
        raise UserError(f"--warmup {s.warmup}: cannot be negative")
    points = s.output / "points.csv"
    if points.exists() and not (s.resume or s.force):
        raise UserError(f"run directory '{s.output}' already has results: add --resume to continue it or --force "
                        "to start over")


def run_metadata(s: SweepSettings, target: Target, workers) -> dict:
    info = machine_info()
    return {"schema_version": RUN_SCHEMA_VERSION, "command": s.command or " ".join(sys.argv),
            "staronnx": __version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
            "cpu": info.cpu_model, "cores": info.cores, "gpu": cuda_status().reason if cuda_status().usable else None,
            "target": str(s.target), "model_sha256": target.model_sha256, "plan_sha256": target.plan_sha256,
            "workers": s.workers, "worker_cores": {w.name: list(w.cores) for w in workers}, "policy": s.policy,
            "engine": "real", "system": s.system, "seed": s.seed, "batches": s.batches, "warmup": s.warmup,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node()}


def _done_points(path: Path) -> set[tuple[int, float]]:
    if not path.exists():
        return set()
    frame = pd.read_csv(path)
    return {(int(b), float(r)) for b, r in zip(frame.batch_size, frame.rate_qps)}


def run_sweep(s: SweepSettings, on_point=lambda row: None, on_progress=lambda done, total: None) -> list[dict]:
    check_settings(s)
    target = load_target(s.target)
    status = cuda_status()
    workers = parse_workers(s.workers, sorted(os.sched_getaffinity(0)), status.usable, status.reason)
    policy = make_policy(s.policy)
    s.output.mkdir(parents=True, exist_ok=True)
    if s.force:
        for name in ("points.csv", "batches.csv", "run.json"):
            (s.output / name).unlink(missing_ok=True)
    if not (s.output / "run.json").exists():
        (s.output / "run.json").write_text(json.dumps(run_metadata(s, target, workers), indent=2) + "\n")
    done = _done_points(s.output / "points.csv") if s.resume else set()
    perf = PerfModel.load(s.output / "perfmodel.json")
    rows = []
    total = len(s.batch_sizes) * len(s.rates)
    progress = 0
    for n in s.batch_sizes:
        executor = None
        congested_at = None
        try:
            for rate in s.rates:
                progress += 1
                if (n, rate) in done:
                    on_progress(progress, total)
                    continue
                if congested_at is not None:
                    row = _skipped_row(s, n, rate, congested_at)
                else:
                    if executor is None:
                        loop = RealLoop()
                        executor = ThreadExecutor(loop, workers, target.part_files, n)
                    row, batch_rows = _run_point(s, n, rate, workers, policy, perf, executor, target.graph)
                    append_rows(s.output / "batches.csv", BATCH_COLUMNS, batch_rows)
                    if row["congested"]:
                        congested_at = rate
                append_rows(s.output / "points.csv", POINT_COLUMNS, [row])
                perf.save(s.output / "perfmodel.json")
                rows.append(row)
                on_point(row)
                on_progress(progress, total)
        finally:
            if executor is not None:
                executor.close()
    return rows


def _skipped_row(s: SweepSettings, n: int, rate: float, congested_at: float) -> dict:
    return {"system": s.system, "engine": "real", "policy": s.policy, "workers": s.workers, "batch_size": n,
            "rate_qps": rate, "batches": 0, "congested": True,
            "reason": f"not run: batch {n} was already congested at {congested_at:g} q/s"}


def _run_point(s, n, rate, workers, policy, perf, executor, graph) -> tuple[dict, list[dict]]:
    loop = RealLoop()
    executor.loop = loop
    schedule = fixed_rate_batches(rate, n, s.warmup + s.batches)
    duration = float(schedule.release_s[-1]) if schedule.batches else 0.0
    limits = Limits(max_backlog=max(8, 4 * len(workers)), time_cap_s=1.5 * duration + 10.0)
    scheduler = Scheduler(loop, executor, workers, policy, perf, graph)
    records, stop = scheduler.run(schedule, limits)
    measured = [r for r in records[s.warmup:] if math.isfinite(r.end_s)]
    latency = np.array([r.end_s - r.first_arrival_s for r in measured])
    reason = stop or congestion(latency, 0, 1, 0.0, float("inf"))
    errors = sorted({r.error for r in records if r.error})
    arrivals = fixed_rate(rate, n * (s.warmup + s.batches))
    if measured:
        query_arrivals = np.concatenate([arrivals[r.index * n:(r.index + 1) * n] for r in measured])
        span = max(r.end_s for r in measured) - measured[0].first_arrival_s
    else:
        query_arrivals, span = np.array([]), 0.0
    summary = summarize(np.array([r.first_arrival_s for r in measured]), np.array([r.end_s for r in measured]),
                        query_arrivals, n, span, reason)
    released = [r for r in records if math.isfinite(r.actual_release_s)]
    lateness = np.array([r.actual_release_s - r.scheduled_release_s for r in released])
    row = {"system": s.system, "engine": "real", "policy": s.policy, "workers": s.workers, "batch_size": n,
           "rate_qps": rate, "batches": summary.batches,
           **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.__dict__.items() if k != "batches"},
           "release_lateness_p99_us": round(float(np.percentile(lateness, 99) * 1e6), 1) if lateness.size else "",
           "errors": "; ".join(errors)}
    if summary.congested:
        for key in ("mean_max_latency_ms", "std_max_latency_ms", "p50_latency_ms", "p99_latency_ms"):
            row[key] = ""
    names = [w.name for w in workers]

    def ordered(record):
        return sorted(record.tasks, key=lambda t: t.part)

    batch_rows = [{
        "system": s.system, "batch_size": n, "rate_qps": rate, "batch_index": r.index, "measured": r.index >= s.warmup,
        "first_arrival_s": round(r.first_arrival_s, 7), "scheduled_release_s": round(r.scheduled_release_s, 7),
        "actual_release_s": round(r.actual_release_s, 7), "end_s": round(r.end_s, 7),
        "first_query_latency_ms": round(1000 * (r.end_s - r.first_arrival_s), 4),
        "placement": ",".join(f"{t.part}:{names[t.worker]}" for t in ordered(r)),
        "task_times": ";".join(f"{t.part}:{t.start_s:.7f}-{t.end_s:.7f}" for t in ordered(r)),
        "error": r.error} for r in records if math.isfinite(r.actual_release_s)]
    return row, batch_rows
