"""A sweep: batch sizes x rates, one point at a time, each point's rows appended as soon as it finishes."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import onnxruntime as ort

from .. import __version__
from ..errors import UserError
from ..hostload import counters, sample_load
from ..machine import machine_info
from ..ortenv import cuda_status
from ..results.rundir import RunDir
from ..results.schema import RUN_SCHEMA_VERSION
from ..runtime.policies import Policy, make_policy
from ..systems import Engine, make_engine, policy_of
from ..systems.target import Target, load_target
from .autogrid import MAX_PROBES, PRECISION, capacity_qps, next_probe, union_grid
from .checks import (
    check_duration,
    check_loadable,
    check_memory,
    check_resume,
    check_settings,
    layout_warnings,
)
from .lock import run_lock
from .point import PointSpec, batch_rows, point_row, run_point
from .progress import SweepProgress
from .settings import SweepSettings


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


def record_calibration(run: RunDir, engine) -> None:
    """run.json keeps what each worker kind ran alone before the points (and how long that took), and which
    parts GPU workers run as CUDA graphs."""
    log = getattr(engine, "calibration", None)
    if log is None or not run.run_json.exists():
        return

    def add(meta: dict) -> None:
        seen = {json.dumps(c, sort_keys=True) for c in meta.get("calibration", [])}
        meta["calibration"] = meta.get("calibration", []) + [c.to_json() for c in log
                                                             if json.dumps(c.to_json(), sort_keys=True) not in seen]
        notes = getattr(engine, "graph_notes", [])
        if notes:
            meta["cuda_graph_parts"] = list(dict.fromkeys(meta.get("cuda_graph_parts", []) + notes))
        links = getattr(engine, "link_measured", {})
        if links:  # the host->device figures dmda predicted with, per GPU worker (platform from-run reads them)
            meta["transfer_measured"] = {**meta.get("transfer_measured", {}), **links}
            meta["transfer"] = engine.link.to_json()

    run.update_meta(add)


def warn_rejected_graphs(engine, on_notice) -> None:
    """A part that could run as a CUDA graph but does not (capture failed, or its outputs disagreed) is a warning,
    with the difference found: the sweep goes on with the plain session, slower than it could be."""
    for note in getattr(engine, "graph_rejections", []):
        on_notice(f"warning: no CUDA graph for {note}; the plain session serves it (--no-cuda-graphs says so "
                  "up front)")


@dataclass
class Prepared:
    """A sweep checked and ready: everything a user can get wrong fails here, before any progress bar."""

    target: Target
    engine: Engine
    policy: Policy
    meta: dict
    warnings: list[str]  # about the layout, said before the sweep starts (sweep/checks.layout_warnings)


def check_policy_kinds(s: SweepSettings, policy, engine) -> None:
    """A static policy naming a worker kind the workers lack could only congest: one line instead."""
    missing = [k for k in getattr(policy, "kinds", []) if not any(w.kind == k for w in engine.workers)]
    if missing:
        raise UserError(f"--policy {s.policy} puts parts on {missing[0]} workers but the workers "
                        f"({engine.workers_label()}) have none: add one or change the policy")


def prepare_sweep(s: SweepSettings) -> Prepared:
    check_settings(s)
    make_policy(s.policy)  # an unknown policy is refused even when a baseline system ignores it
    target = load_target(s.target)
    engine = make_engine(s, target)
    policy = make_policy(policy_of(s), engine.link) if s.system in ("staronnx", "roundrobin") else make_policy("eager")
    check_policy_kinds(s, policy, engine)
    check_memory(s, target, engine.workers)
    if s.engine == "real":
        check_loadable(target)
    meta = run_metadata(s, target, engine)
    if s.resume and not s.force and (s.output / "run.json").exists() and (s.output / "points.csv").exists():
        check_resume(s, meta, s.output)
    return Prepared(target, engine, policy, meta, layout_warnings(target, engine.workers, s.system))


def run_sweep(s: SweepSettings, on_point=lambda row: None, on_progress=lambda progress: None,
              prepared: Prepared | None = None, on_notice=lambda text: None) -> list[dict]:
    """Every (N, rho) of the grid, N by N; one executor (warmed sessions) per N; rows appended per point; the run
    directory locked against a second writer the whole time."""
    prepared = prepared or prepare_sweep(s)
    with run_lock(s.output):
        return _sweep(s, prepared, on_point, on_progress, on_notice)


def start_run(s: SweepSettings, prepared: Prepared, on_notice):
    """The run directory made ready (started over with --force, repaired with --resume, run.json written) and the
    machine's load recorded at the start; returns the load counters (None on the virtual clock)."""
    for note in getattr(prepared.engine, "notices", []):
        on_notice(note)
    for note in RunDir(s.output).start(prepared.meta, s.force, s.resume, s.rows_per_point):
        on_notice(note)
    watch_load = prepared.engine.name == "real"  # the virtual clock does not care how busy the machine is
    return record_load(RunDir(s.output), "start") if watch_load else None


def _sweep(s: SweepSettings, prepared: Prepared, on_point, on_progress, on_notice) -> list[dict]:
    engine = prepared.engine
    policy_spec = policy_of(s)
    since = start_run(s, prepared, on_notice)
    watch_load = since is not None
    measured = RunDir(s.output).measured() if s.resume else {}
    names = [w.name for w in engine.workers]
    label = {"system": s.system, "engine": engine.name, "policy": policy_spec, "workers": engine.workers_label(),
             "model": s.model_name or s.target.stem}
    grid, capacities = (list(s.rates), {}) if not s.auto_rates else _auto_grid(s, engine, on_notice)
    rows: list[dict] = []
    planned = s.warmup + s.batches
    progress = SweepProgress(listener=on_progress)
    for n in s.batch_sizes:
        for rate in grid:
            progress.add(n, rate, planned)
            if (n, rate) in measured:
                progress.start(n, rate, planned)
                progress.finish()
    for n in s.batch_sizes:
        todo = [r for r in grid if (n, r) not in measured]
        mine = [(r, c) for (m, r), c in measured.items() if m == n]
        if not todo and not (s.auto_rates and next_probe(mine, capacities.get(n))):
            continue
        setup = engine.prepare(n)
        failure = setup.failure
        services = [float(x) for x in setup.services_s or [] if isinstance(x, (int, float))]  # one model: S_w(N)
        record_calibration(RunDir(s.output), engine)
        warn_rejected_graphs(engine, on_notice)
        point = _BatchSizePoints(s, prepared, label, names, n, setup.executor, failure, services, rows, mine, on_point,
                             progress)
        try:
            for rate in todo:
                point.measure(rate)
            probes = 0
            point.congested_at = None  # a probe lies below the congested rate it refines
            while s.auto_rates and not failure and probes < MAX_PROBES:
                probe = next_probe(mine, capacities.get(n))
                if probe is None or any(r == probe for r, _ in mine):
                    break
                rate = probe
                progress.add(n, rate, planned)
                point.measure(rate)
                probes += 1
        finally:
            if setup.executor is not None:
                setup.executor.close()
    if watch_load:
        record_load(RunDir(s.output), "during", since, s.system == "triton")
    return rows


def record_load(run: RunDir, when: str, since=None, server_elsewhere: bool = False):
    """run.json's machine_load: at the start, the machine over a short window; at the end, the other processes'
    CPU time over the whole sweep (not for Triton: its server is another process). Returns the counters."""
    start = counters()
    if not server_elsewhere:
        sample = sample_load(when, since)
        run.update_meta(lambda meta: meta.update(machine_load=meta.get("machine_load", []) + [sample]))
    return start


@dataclass
class _BatchSizePoints:
    """Measures the points of one batch size on its prepared executor and appends their rows; after a congested
    point, higher rates of the grid are recorded as congested without running (they would only be slower)."""

    s: SweepSettings
    prepared: Prepared
    label: dict
    names: list[str]
    n: int
    executor: object
    failure: str
    services: list[float]
    rows: list[dict]
    mine: list[tuple[float, bool]]  # (rate, congested) of this N, in points.csv
    on_point: Callable[[dict], None]
    progress: SweepProgress
    congested_at: float | None = None

    def measure(self, rate: float) -> dict:
        s, n, engine = self.s, self.n, self.prepared.engine
        self.progress.start(n, rate, s.warmup + s.batches)
        spec = PointSpec(n, rate, s.warmup, s.batches, s.arrival,
                         None if s.max_queue_delay_ms is None else s.max_queue_delay_ms / 1000, s.seed)
        if self.failure:
            row = {**self.label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": False,
                   "reason": "failed: workers could not run this batch size", "errors": self.failure}
        elif self.congested_at is not None and rate > self.congested_at:
            row = {**self.label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": True,
                   "reason": f"not run: batch {n} was already congested at {self.congested_at:g} q/s"}
        else:
            records, stop, times, first = run_point(spec, engine, self.executor, self.prepared.policy,
                                                    self.prepared.target.graph, self.services,
                                                    on_batch=lambda record: self.progress.batch(n, rate))
            row = {**self.label, **point_row(spec, records, stop, times, self.names, self.services, first)}
            RunDir(s.output).append_batches([{"system": s.system, **b, "model": self.label["model"]}
                                             for b in batch_rows(spec, records, self.names, first)])
            if row["congested"] and self.congested_at is None:
                self.congested_at = rate
        RunDir(s.output).append_points([row])
        engine.after_point()
        self.rows.append(row)
        self.mine.append((rate, bool(row["congested"])))
        self.progress.finish()
        self.on_point(row)
        return row


def _auto_grid(s: SweepSettings, engine, on_notice) -> tuple[list[float], dict[int, float | None]]:
    """`--rate auto`: each N's capacity measured first (its workers prepared once for it, then closed), the union
    grid of fractions of them, both kept in run.json; a resumed run reuses the grid it started with."""
    run = RunDir(s.output)
    meta = run.read_meta()
    if s.resume and meta.get("auto_rates"):
        return [float(r) for r in meta["auto_rates"]], {int(k): v for k, v in meta["auto_capacity_qps"].items()}
    capacities: dict[int, float | None] = {}
    for n in s.batch_sizes:
        setup = engine.prepare(n)
        try:
            capacities[n] = None if setup.failure else capacity_qps(n, list(setup.services_s or []))
        finally:
            if setup.executor is not None:
                setup.executor.close()
    record_calibration(run, engine)
    grid = union_grid(capacities)
    if not grid:
        raise UserError("--rate auto: no worker's service time could be measured at any batch size: give rates, "
                        "e.g. --rate 10:100:10")
    check_duration(replace(s, rates=tuple(grid), auto_rates=False))
    run.update_meta(lambda meta: meta.update({"auto_rates": grid, "auto_capacity_qps": {
        str(n): (round(c, 3) if c else None) for n, c in capacities.items()}}))
    on_notice("--rate auto: capacity " + ", ".join(f"N={n} {c:.4g} q/s" for n, c in capacities.items() if c)
              + f"; {len(grid)} rates from {grid[0]:g} to {grid[-1]:g} q/s, then each N's rho_max to "
              f"{100 * PRECISION:.0f} %")
    return grid, capacities
