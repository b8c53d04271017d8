"""A sweep: batch sizes x rates, one point at a time, each point's rows appended as soon as it finishes."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import pandas as pd

from .. import __version__
from ..errors import UserError, first_line, json_text
from ..load.schedule import arrivals
from ..machine import machine_info
from ..ortenv import cuda_status
from ..results.schema import (
    BATCH_COLUMNS,
    POINT_COLUMNS,
    RUN_SCHEMA_VERSION,
    append_rows,
    cut_partial_line,
    read_run_meta,
)
from ..runtime.policies import make_policy
from ..systems import make_engine, policy_of
from ..systems.target import Target, load_target
from .lock import run_lock
from .point import PointSpec, batch_rows, point_row, run_point


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
    arrival: str = "fixed"
    max_queue_delay_ms: float | None = None
    system: str = "staronnx"
    seed: int = 0
    max_memory_gib: float | None = None  # refuse a sweep needing more (default: half this machine's memory)
    max_hours: float = 24.0  # refuse a real sweep whose arrivals alone last longer (a typo in --batch or --rate)
    calibrate: bool = False  # start the performance models afresh instead of reusing the cached ones
    cuda_graphs: bool = True  # GPU workers run parts with static shapes as CUDA graphs
    engine: str = "real"  # or "sim": the same scheduler on a virtual clock
    platform: Path | None = None  # sim: the machine (default: this host's cached performance models)
    sim_noise: bool = False  # sim: draw execution times from the models' std (seeded)
    triton_port: int = 0  # --system triton: gRPC port (HTTP +1, metrics +2); 0 = free ports the kernel picks
    resume: bool = False
    force: bool = False
    command: str = ""
    model_name: str = ""  # as the user named it (zoo name, file stem), for titles


def check_settings(s: SweepSettings) -> None:
    if s.output.exists() and not s.output.is_dir():
        raise UserError(f"-o '{s.output}' is a file: a sweep writes a run directory; choose another -o")
    if any(b < 1 for b in s.batch_sizes):
        raise UserError(f"--batch {list(s.batch_sizes)}: batch sizes must be at least 1")
    if s.batches < 2:
        raise UserError(f"--batches {s.batches}: at least 2 measured batches per point (the paper uses 50)")
    if s.warmup < 0:
        raise UserError(f"--warmup {s.warmup}: cannot be negative")
    if s.seed < 0:
        raise UserError(f"--seed {s.seed}: a seed is a non-negative integer")
    if not 0 <= s.triton_port <= 65533:  # it uses the port and the next two
        raise UserError(f"--triton-port {s.triton_port}: a TCP port from 1 to 65533 (it uses P, P+1, P+2), or 0 "
                        "for free ones")
    if s.max_queue_delay_ms is not None and not (0 <= s.max_queue_delay_ms < float("inf")):
        raise UserError(f"--max-queue-delay {s.max_queue_delay_ms:g}: a delay in ms must be a finite number, 0 or "
                        "more")
    check_duration(s)
    arrivals(s.arrival, 1.0, 2, s.seed)  # an unknown kind or an unreadable trace fails here, before any work
    points = s.output / "points.csv"
    if points.exists() and not (s.resume or s.force):
        raise UserError(f"run directory '{s.output}' already has results: add --resume to continue it or --force "
                        "to start over")
    if points.exists() and s.resume:
        meta = s.output / "run.json"
        version = read_run_meta(meta).get("schema_version") if meta.exists() else None
        if version != RUN_SCHEMA_VERSION:
            raise UserError(f"run directory '{s.output}' was written by another staronnx (schema {version}, this "
                            f"one writes {RUN_SCHEMA_VERSION}): sweep into a new directory or use --force")


RESUME_KEYS = ("model_sha256", "plan_sha256", "system", "engine", "workers", "policy", "arrival",
               "max_queue_delay_ms", "batches", "warmup", "seed", "cuda_graphs")


def check_resume(s: SweepSettings, meta: dict, run_dir: Path) -> None:
    """--resume continues the same run: same model, system, workers, policy, load and batch counts."""
    old = read_run_meta(run_dir / "run.json")
    for key in RESUME_KEYS:
        if old.get(key) != meta.get(key):
            raise UserError(f"--resume: '{run_dir}' was measured with {key} = {old.get(key)!r}, this sweep has "
                            f"{meta.get(key)!r}: use the same settings, a new -o, or --force")


def run_metadata(s: SweepSettings, target: Target, engine) -> dict:
    info = machine_info()
    status = cuda_status()
    return {"schema_version": RUN_SCHEMA_VERSION, "command": s.command or " ".join(sys.argv),
            "staronnx": __version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
            "cpu": info.cpu_model, "cores": info.cores, "gpu": status.reason if status.usable else None,
            "target": str(s.target), "model_name": s.model_name or s.target.stem,
            "model_sha256": target.model_sha256, "plan_sha256": target.plan_sha256,
            "parts": len(target.part_files), "offload_fraction": target.offload_fraction,
            "split_method": target.split_method, "workers": engine.workers_label(),
            "worker_cores": {w.name: list(w.cores) for w in engine.workers}, "policy": policy_of(s),
            "engine": engine.name, "system": s.system, "arrival": s.arrival, "max_queue_delay_ms": s.max_queue_delay_ms,
            "seed": s.seed, "batches": s.batches, "warmup": s.warmup, "cuda_graphs": s.cuda_graphs,
            "host": platform.node(), **engine.metadata()}


def _done_points(path: Path) -> set[tuple[int, float]]:
    if not path.exists():
        return set()
    frame = pd.read_csv(path)
    return {(int(b), float(r)) for b, r in zip(frame.batch_size, frame.rate_qps)}


RECORD_BYTES, TASK_BYTES = 400, 120  # a batch's record, and each task's (measured: ~500 bytes with one task)


def memory_needed(s: SweepSettings, target: Target, workers) -> tuple[int, str]:
    """What the largest point holds at once: its arrival schedule and batch records (extensions included), the
    input batches (a host copy, and a pinned one per GPU worker), and ONNX Runtime's tensors: every worker may run
    the largest part at once, each holding at most all of that part's intermediate tensors (ORT's planner reuses
    some, so this is a bound, not a forecast; the simulated engine runs none)."""
    n = max(s.batch_sizes)
    batches = s.warmup + s.batches * (1 + PointSpec(n, 1.0, s.warmup, s.batches).extensions)
    parts = len(target.part_files)
    schedule = n * batches * 8 + batches * (4 * 8 + RECORD_BYTES + parts * TASK_BYTES)
    per_sample = sum(target.graph.input_bytes_per_sample[p].get(-1, 0) for p in range(parts))
    inputs = per_sample * n * (1 + sum(w.kind == "cuda" for w in workers))
    tensors = 0 if s.engine == "sim" else max(map(activation_bytes_per_sample, target.part_files)) * n * len(workers)
    return schedule + inputs + tensors, (
        f"{batches:,} batches of {n} at the largest point: {schedule / 2**30:.2f} GiB of schedule and records, "
        f"{inputs / 2**30:.2f} GiB of input batches, up to {tensors / 2**30:.2f} GiB of ONNX Runtime tensors on "
        f"{len(workers)} worker(s)")


def activation_bytes_per_sample(part: Path) -> int:
    """Bytes per sample of all the tensors a model's nodes write (0 where shape inference cannot tell)."""
    from .. import modelio

    return sum(modelio.tensor_bytes_by_node(modelio.load_model(part, with_weights=False), 1).values())


def check_loadable(target: Target) -> None:
    """A model or plan part ONNX Runtime cannot load is a user error before the first point (not a run of failed
    points): each part is loaded once on the CPU, without graph optimisation (fast)."""
    import onnxruntime as ort

    from ..ortenv import session_options

    for part in target.part_files:
        try:
            ort.InferenceSession(str(part), session_options(1, "disabled"), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/NotImplemented types
            raise UserError(f"ONNX Runtime cannot load '{part}' ({first_line(exc)}): check the model with "
                            "'staronnx profile', or re-export it") from None


def arrival_seconds(s: SweepSettings) -> float:
    """How long the grid's queries take to arrive, at the least: (warm-up + measured) batches of N queries at each
    rate, without the extensions a rising point may add; the sweep cannot be shorter on the real clock."""
    return sum((s.warmup + s.batches) * n / rate for n in s.batch_sizes for rate in s.rates)


def check_duration(s: SweepSettings) -> None:
    if not (s.max_hours > 0 and math.isfinite(s.max_hours)):
        raise UserError(f"--max-hours {s.max_hours:g}: give a positive, finite number of hours")
    hours = arrival_seconds(s) / 3600
    if s.engine == "real" and hours > s.max_hours:
        n, rate = max(s.batch_sizes), min(s.rates)
        raise UserError(f"this sweep's queries alone take {hours:.3g} h to arrive (batch {n} at {rate:g} q/s fills "
                        f"one batch every {n / rate:.3g} s), more than --max-hours {s.max_hours:g}: lower --batch or "
                        f"--batches, raise the lowest --rate, or raise --max-hours")


def check_memory(s: SweepSettings, target: Target, workers) -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 2**34
    limit_gib = s.max_memory_gib if s.max_memory_gib is not None else total / 2 / 2**30
    if not (limit_gib > 0 and math.isfinite(limit_gib)):
        raise UserError(f"--max-memory {limit_gib:g}: give a positive, finite number of GiB")
    needed, why = memory_needed(s, target, workers)
    if needed > limit_gib * 2**30:
        raise UserError(f"this sweep needs about {needed / 2**30:.3g} GiB ({why}), more than --max-memory "
                        f"{limit_gib:.3g} GiB: lower --batches or the largest --batch, or raise --max-memory")


def _record_calibration(run_json: Path, engine) -> None:
    """run.json keeps what each worker kind ran alone before the points (and how long that took), and which
    parts GPU workers run as CUDA graphs."""
    log = getattr(engine, "calibration", None)
    if log is None or not run_json.exists():
        return
    meta = read_run_meta(run_json)
    seen = {json.dumps(c, sort_keys=True) for c in meta.get("calibration", [])}
    meta["calibration"] = meta.get("calibration", []) + [c.to_json() for c in log
                                                         if json.dumps(c.to_json(), sort_keys=True) not in seen]
    notes = getattr(engine, "graph_notes", [])
    if notes:
        meta["cuda_graph_parts"] = list(dict.fromkeys(meta.get("cuda_graph_parts", []) + notes))
    write_run_json(run_json, meta)


def write_run_json(path: Path, meta: dict) -> None:
    """Atomically; a file system that refuses (read-only, full) is one line, and what was measured is kept."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json_text(meta))
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write '{path}' ({exc.strerror or first_line(exc)}): free space or fix permissions, "
                        "then continue with --resume; the points measured before are kept") from None


@dataclass
class Prepared:
    """A sweep checked and ready: everything a user can get wrong fails here, before any progress bar."""

    target: Target
    engine: object
    policy: object
    meta: dict


def prepare_sweep(s: SweepSettings) -> Prepared:
    check_settings(s)
    make_policy(s.policy)  # an unknown policy is refused even when a baseline system ignores it
    target = load_target(s.target)
    engine = make_engine(s, target)
    policy = make_policy(policy_of(s), engine.link) if s.system in ("staronnx", "roundrobin") else make_policy("eager")
    missing = [k for k in getattr(policy, "kinds", []) if not any(w.kind == k for w in engine.workers)]
    if missing:
        raise UserError(f"--policy {s.policy} puts parts on {missing[0]} workers but the workers "
                        f"({engine.workers_label()}) have none: add one or change the policy")
    check_memory(s, target, engine.workers)
    if s.engine == "real":
        check_loadable(target)
    meta = run_metadata(s, target, engine)
    if s.resume and not s.force and (s.output / "run.json").exists() and (s.output / "points.csv").exists():
        check_resume(s, meta, s.output)
    return Prepared(target, engine, policy, meta)


def run_sweep(s: SweepSettings, on_point=lambda row: None, on_progress=lambda done, total: None,
              prepared: Prepared | None = None, on_notice=lambda text: None) -> list[dict]:
    """Every (N, rho) of the grid, N by N; one executor (warmed sessions) per N; rows appended per point; the run
    directory locked against a second writer the whole time."""
    prepared = prepared or prepare_sweep(s)
    with run_lock(s.output):
        return _sweep(s, prepared, on_point, on_progress, on_notice)


def repair_run(run_dir: Path) -> list[str]:
    """Before a resume: cut a torn last line from each result file, and drop the batch rows of points that never
    got their points.csv row (points.csv is the commit record), so a resumed point is not counted twice."""
    notes = [n for n in (cut_partial_line(run_dir / "points.csv"), cut_partial_line(run_dir / "batches.csv")) if n]
    batches = run_dir / "batches.csv"
    if not batches.exists():
        return notes
    committed = _done_points(run_dir / "points.csv")
    rows = list(csv.reader(io.StringIO(batches.read_text())))
    if not rows:
        return notes
    size, rate = rows[0].index("batch_size"), rows[0].index("rate_qps")
    keep = [rows[0]] + [r for r in rows[1:] if (int(r[size]), float(r[rate])) in committed]
    if len(keep) < len(rows):
        text = io.StringIO()
        csv.writer(text).writerows(keep)
        tmp = batches.with_name(batches.name + ".tmp")
        tmp.write_text(text.getvalue())
        tmp.replace(batches)
        notes.append(f"batches.csv: {len(rows) - len(keep)} rows of a point that never finished were removed")
    return notes


def _sweep(s: SweepSettings, prepared: Prepared, on_point, on_progress, on_notice) -> list[dict]:
    target, engine, policy, meta = prepared.target, prepared.engine, prepared.policy, prepared.meta
    workers, perf = engine.workers, engine.perf
    policy_spec = policy_of(s)
    if s.force:
        for name in ("points.csv", "batches.csv", "run.json"):
            (s.output / name).unlink(missing_ok=True)
    for note in getattr(engine, "notices", []):
        on_notice(note)
    if s.resume:
        for note in repair_run(s.output):
            on_notice(note)
    if not (s.output / "run.json").exists() or not (s.output / "points.csv").exists():  # a stale start: replaced
        write_run_json(s.output / "run.json", meta)
    done = _done_points(s.output / "points.csv") if s.resume else set()
    names = [w.name for w in workers]
    label = {"system": s.system, "engine": engine.name, "policy": policy_spec, "workers": engine.workers_label()}
    rows = []
    total, progress = len(s.batch_sizes) * len(s.rates), 0
    for n in s.batch_sizes:
        todo = [r for r in s.rates if (n, r) not in done]
        progress += len(s.rates) - len(todo)
        on_progress(progress, total)
        if not todo:
            continue
        setup = engine.prepare(n)
        executor, failure, services = setup.executor, setup.failure, list(setup.services_s or [])
        _record_calibration(s.output / "run.json", engine)
        congested_at = None
        try:
            for rate in todo:
                spec = PointSpec(n, rate, s.warmup, s.batches, s.arrival,
                                 None if s.max_queue_delay_ms is None else s.max_queue_delay_ms / 1000, s.seed)
                if failure:
                    row = {**label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": False,
                           "reason": "failed: workers could not run this batch size", "errors": failure}
                elif congested_at is not None:
                    row = {**label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": True,
                           "reason": f"not run: batch {n} was already congested at {congested_at:g} q/s"}
                else:
                    records, stop, times, first = run_point(spec, executor, workers, policy, perf, target.graph,
                                                            engine.loop_factory, engine.runner, services)
                    row = {**label, **point_row(spec, records, stop, times, names, services, first)}
                    append_rows(s.output / "batches.csv", BATCH_COLUMNS,
                                [{"system": s.system, **b} for b in batch_rows(spec, records, names, first)])
                    if row["congested"]:
                        congested_at = rate
                append_rows(s.output / "points.csv", POINT_COLUMNS, [row])
                engine.after_point()
                rows.append(row)
                progress += 1
                on_point(row)
                on_progress(progress, total)
        finally:
            if executor is not None:
                executor.close()
    return rows
