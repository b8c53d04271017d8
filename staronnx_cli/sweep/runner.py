"""A sweep: batch sizes x rates, one point at a time, each point's rows appended as soon as it finishes."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

import onnxruntime as ort

from .. import __version__
from ..dirlock import run_lock
from ..errors import UserError
from ..machine import machine_info
from ..ortenv import cuda_status
from ..results.rundir import RunDir
from ..results.runmeta import RunMeta
from ..results.schema import RUN_SCHEMA_VERSION, flags, unsettled
from ..runtime.policies import Policy, check_policy_parts, make_policy
from ..systems import BatchSizeSetup, Engine, make_engine, policy_of
from ..systems.target import Target, load_target
from .autogrid import MAX_PROBES, PRECISION, grid_capacity, next_probe, union_grid
from .checks import (
    arrival_notes,
    check_duration,
    check_loadable,
    check_memory,
    check_resume,
    check_settings,
    check_target_data,
    layout_warnings,
    output_notes,
    platform_notes,
)
from .orchestrator import failed_row, record_calibration, run_grid
from .point import JUDGING, batch_rows, point_of, point_row, run_point, second_try_reason, worth_a_second_try
from .progress import SweepProgress
from .settings import SweepSettings


def run_metadata(s: SweepSettings, target: Target, engine) -> RunMeta:
    info = machine_info()
    status = cuda_status()
    return RunMeta(
        schema_version=RUN_SCHEMA_VERSION, command=s.command or " ".join(sys.argv), staronnx=__version__,
        onnxruntime=ort.__version__, python=platform.python_version(), cpu=info.cpu_model, cores=info.cores,
        gpu=status.reason if status.usable else None, host=platform.node(), target=str(s.target),
        model_name=s.model_name or s.target.stem, model_sha256=target.model_sha256, plan_sha256=target.plan_sha256,
        parts=len(target.part_files), offload_fraction=target.offload_fraction, split_method=target.split_method,
        workers=engine.workers_label(), worker_cores={w.name: list(w.cores) for w in engine.workers},
        policy=policy_of(s), engine=engine.name, system=s.system, arrival=s.arrival,
        max_queue_delay_ms=s.max_queue_delay_ms, seed=s.seed, input_data=s.input_data.words(), batches=s.batches,
        warmup=s.warmup,
        cuda_graphs=s.cuda_graphs, judging=JUDGING).with_recorded(engine.metadata())


@dataclass
class Prepared:
    """A sweep checked and ready: everything a user can get wrong fails here, before any progress bar."""

    target: Target
    engine: Engine
    policy: Policy
    meta: RunMeta
    warnings: list[str]  # about the output and the layout, said before the sweep starts (sweep/checks.py)


def check_policy_kinds(s: SweepSettings, policy, engine, parts: int) -> None:
    """A static policy naming a worker kind the workers lack could only congest, and one naming more kinds than
    the model has parts was a typo: one line instead."""
    check_policy_parts(s.policy, policy, parts)
    missing = [k for k in policy.kinds if not any(w.kind == k for w in engine.workers)]
    if missing:
        raise UserError(f"--policy {s.policy} puts parts on {missing[0]} workers but the workers "
                        f"({engine.workers_label()}) have none: add one or change the policy")


def prepare_sweep(s: SweepSettings) -> Prepared:
    check_settings(s)
    make_policy(s.policy)  # an unknown policy is refused even when a baseline system ignores it
    target = load_target(s.target)
    check_target_data(s.input_data, target)
    engine, policy = prepare_engine(s, target)
    return prepared_run(s, target, engine, policy, run_metadata(s, target, engine),
                        output_notes(s) + arrival_notes(s) + platform_notes(s)
                        + layout_warnings(target, engine.workers, s.system, _this_machine(s)))


def _this_machine(s: SweepSettings) -> tuple[int, bool] | None:
    """This host's usable cores and GPU, for the layouts a real sweep's warnings suggest (a simulated one: None)."""
    if s.engine == "sim":
        return None
    from ..devices import usable_cores
    from ..ortenv import cuda_status

    return usable_cores(), cuda_status().usable


def prepare_engine(s: SweepSettings, target: Target, mix=None,
                   memory_limits: dict[str, int] | None = None) -> tuple[Engine, Policy]:
    """The engine and its policy, for one model or a mix (`mix`: its models' arrivals; a static policy numbers each
    model's parts from 0); a static policy naming a kind the workers lack is one line."""
    engine = make_engine(s, target, mix, memory_limits)
    policy = make_policy(policy_of(s), engine.link) if s.system in ("staronnx", "roundrobin") else make_policy("eager")
    check_policy_kinds(s, policy, engine, max((len(m.target.part_files) for m in target.members),
                                              default=len(target.part_files)))
    if policy.kinds and target.members:  # static:KIND,KIND names each model's parts in order
        policy.local_part = [p - target.members[m].first_part for p, m in enumerate(target.graph.models or [])]
    return engine, policy


def prepared_run(s: SweepSettings, target: Target, engine: Engine, policy: Policy, meta: RunMeta,
                 warnings: list[str]) -> Prepared:
    """The last checks of any sweep, before any progress bar: memory, ONNX Runtime loading every part, and a
    resumed run's settings against the ones it was measured with."""
    check_memory(s, target, engine.workers)
    if s.engine == "real":
        check_loadable(target)
    if s.resume and not s.force and (s.output / "run.json").exists() and (s.output / "points.csv").exists():
        check_resume(meta, s.output)
    return Prepared(target, engine, policy, meta, warnings)


def run_sweep(s: SweepSettings, on_point=lambda row: None, on_progress=lambda progress: None,
              prepared: Prepared | None = None, on_notice=lambda text: None) -> list[dict]:
    """Every (N, rho) of the grid, N by N; one executor (warmed sessions) per N; rows appended per point; the run
    directory locked against a second writer the whole time."""
    prepared = prepared or prepare_sweep(s)
    with run_lock(s.output):
        return _sweep(s, prepared, on_point, on_progress, on_notice)


def _sweep(s: SweepSettings, prepared: Prepared, on_point, on_progress, on_notice) -> list[dict]:
    engine = prepared.engine
    label = {"system": s.system, "engine": engine.name, "policy": policy_of(s), "workers": engine.workers_label(),
             "model": s.model_name or s.target.stem}
    grid = RateGrid(s, prepared, label, on_notice)
    return run_grid(s, engine, prepared.meta, grid, on_point, on_progress, on_notice)


def label_of(n: int, rate: float) -> str:
    """How the progress bar names a point."""
    return f"N={n} at {rate:g} q/s"


class RateGrid:
    """A single model's grid: batch size by batch size, its rates; with --rate auto, the rates fitted to the
    measured capacities first, then probes until each N's rho_max is known within PRECISION. After a congested
    point, the higher rates of the grid are recorded as congested without running (they would only be slower);
    probes always run (each lies below the congested rate it refines)."""

    def __init__(self, s: SweepSettings, prepared: Prepared, label: dict, on_notice=lambda text: None):
        self.s, self.prepared, self.label, self.on_notice = s, prepared, label, on_notice
        self.names = [w.name for w in prepared.engine.workers]
        self.measured: dict[tuple[int, float], bool] = {}  # read once the run directory is repaired (plan)
        self.rates: list[float] = list(s.rates)
        self.capacities: dict[int, float | None] = {}
        self.mine: dict[int, list[tuple[float, bool]]] = {}  # N -> (rate, bounds rho_max: congested or not settled)
        self.services: list[float] = []
        self.probing = False
        self.rows_per_point = 1
        self.failed: set[int] = set()  # batch sizes a point of which failed every batch
        self.stopped: dict[int, float] = {}  # N -> the lowest rate a resumed run found congested or failed
        self.slowed_again: set[int] = set()  # batch sizes measured twice for slowed tasks (once each: workers that
        # slow each other, several on one GPU, would have every point near the capacity measured twice)

    def plan_of(self, n: int, rate: float) -> tuple[int, float]:
        """The batches point (n, rate) releases as planned (its warm-up, at least WARMUP_S long, and K, at least
        MEASURE_S long) and the seconds their queries take to arrive."""
        batches = point_of(n, rate, self.s.warmup, self.s.batches).planned
        return batches, batches * n / rate

    def plan(self, progress: SweepProgress) -> None:
        self.measured = RunDir(self.s.output).measured() if self.s.resume else {}
        if self.s.resume:
            self._resume_stops()
        if self.s.auto_rates:  # the run directory is ready: the capacities measured are kept in its run.json
            self.rates, self.capacities = _auto_grid(self.s, self.prepared.engine, self.on_notice)
        for n in self.s.batch_sizes:
            self.mine[n] = [(r, c) for (m, r), c in self.measured.items() if m == n]
            for rate in self.rates:
                progress.add(*self.plan_of(n, rate))
                if (n, rate) in self.measured:
                    progress.start(label_of(n, rate), *self.plan_of(n, rate))
                    progress.finish()

    def _resume_stops(self) -> None:
        """A resumed run goes on as the interrupted one would have: rates above a congested or failed point are not
        run, and a failed batch size is not probed."""
        frame = RunDir(self.s.output).point_rows()
        if frame.empty:
            return
        congested = flags(frame.congested) & (frame.batches.fillna(0) > 0)  # measured so, not a "not run" row
        for row, was_congested in zip(frame.to_dict("records"), congested):
            n, rate = int(row["batch_size"]), float(row["rate_qps"])
            if failed_row(row):
                self.failed.add(n)
            elif not was_congested:
                continue
            self.stopped[n] = min(rate, self.stopped.get(n, rate))

    def setups(self) -> list[int]:
        return list(self.s.batch_sizes)

    def wanted(self, n: int) -> bool:
        return any((n, r) not in self.measured for r in self.rates) or \
            bool(self.s.auto_rates and next_probe(self.mine[n], self.capacities.get(n)))

    def blocked(self, n: int, setup: BatchSizeSetup) -> str:
        return ""

    def points(self, n: int, setup: BatchSizeSetup) -> Iterator[float]:
        self.services = [float(x) for x in setup.services_s or [] if isinstance(x, (int, float))]  # S_w(N)
        self.probing = False
        yield from [r for r in self.rates if (n, r) not in self.measured]
        self.probing = True
        for _ in range(MAX_PROBES if self.s.auto_rates and not setup.failure else 0):
            if n in self.failed:
                return
            probe = next_probe(self.mine[n], self.capacities.get(n))
            if probe is None or any(r == probe for r, _ in self.mine[n]):
                return
            yield probe

    def skipped(self, n: int, rate: float, congested_at: float | None) -> str:
        congested_at = min((r for r in (congested_at, self.stopped.get(n)) if r is not None), default=None)
        if self.probing or congested_at is None or rate <= congested_at:
            return ""
        if n in self.failed:
            return f"not run: batch {n} already failed at {congested_at:g} q/s (every batch)"
        return f"not run: batch {n} was already congested at {congested_at:g} q/s"

    def start(self, n: int, rate: float, progress: SweepProgress) -> None:
        if self.probing:
            progress.add(*self.plan_of(n, rate))
        progress.start(label_of(n, rate), *self.plan_of(n, rate))

    def measure(self, n: int, rate: float, setup: BatchSizeSetup, progress: SweepProgress) -> list[dict]:
        """The point's row; a real point congested well within its capacity is measured once more and the second
        try's row and batches kept (`worth_a_second_try`), its reason saying so."""
        row, batches = self._try(n, rate, setup, progress)
        if self.s.engine == "real" and worth_a_second_try(row, slowed=n not in self.slowed_again):
            self.slowed_again.add(n)
            progress.add(*self.plan_of(n, rate))
            progress.finish()
            progress.start(label_of(n, rate) + " again", *self.plan_of(n, rate))
            first = row
            row, batches = self._try(n, rate, setup, progress)
            row["reason"] = second_try_reason(row, first)
        RunDir(self.s.output).append_batches(batches)
        return [row]

    def _try(self, n: int, rate: float, setup: BatchSizeSetup, progress: SweepProgress) -> tuple[dict, list[dict]]:
        s, engine = self.s, self.prepared.engine
        spec = point_of(n, rate, s.warmup, s.batches, s.arrival,
                        None if s.max_queue_delay_ms is None else s.max_queue_delay_ms / 1000, s.seed)
        records, stop, times, first = run_point(spec, engine, setup.executor, self.prepared.policy,
                                                self.prepared.target.graph, self.services,
                                                on_batch=lambda record: progress.batch())
        batches = [{"system": s.system, **b, "model": self.label["model"]}
                   for b in batch_rows(spec, records, self.names, first)]
        return {**self.label, **point_row(spec, records, stop, times, self.names, self.services, first)}, batches

    def not_run(self, n: int, rate: float, why: str, failure: str) -> list[dict]:
        if failure:
            return [{**self.label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": False,
                     "reason": "failed: workers could not run this batch size", "errors": failure}]
        return [{**self.label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": n not in self.failed,
                 "reason": why}]  # after a failed point: failed too, not congested

    def done(self, n: int, rate: float, rows: list[dict]) -> None:  # not settled: probed below, as congested
        self.mine[n].append((rate, bool(rows[0]["congested"]) or unsettled(rows[0].get("reason"))))
        if failed_row(rows[0]):
            self.failed.add(n)  # no probe either: each would fail as well


def _auto_grid(s: SweepSettings, engine, on_notice) -> tuple[list[float], dict[int, float | None]]:
    """`--rate auto`: each N's capacity measured first (its workers prepared once for it, then closed), the union
    grid of fractions of them, both kept in run.json; a resumed run reuses the grid it started with."""
    run = RunDir(s.output)
    meta = run.read_meta()
    if s.resume and meta.auto_rates:
        grid = sorted({float(r) for r in meta.auto_rates} | set(s.rates))  # and any rate of yours added now
        if len(grid) > len(meta.auto_rates):
            run.update_meta(lambda meta: replace(meta, auto_rates=grid))
        return grid, {int(k): v for k, v in (meta.auto_capacity_qps or {}).items()}
    capacities: dict[int, float | None] = {}
    for n in s.batch_sizes:
        setup = engine.prepare(n)
        try:
            capacities[n] = None if setup.failure else grid_capacity(n, list(setup.services_s or []))
        finally:
            if setup.executor is not None:
                setup.executor.close()
    record_calibration(run, engine)
    grid = sorted(set(union_grid(capacities)) | set(s.rates))  # --rate auto,250: yours measured for every N too
    if not grid:
        raise UserError("--rate auto: no worker's service time could be measured at any batch size: give rates, "
                        "e.g. --rate 10:100:10")
    check_duration(replace(s, rates=tuple(grid), auto_rates=False))
    run.update_meta(lambda meta: replace(meta, auto_rates=grid, auto_capacity_qps={
        str(n): (round(c, 3) if c else None) for n, c in capacities.items()}))
    on_notice("--rate auto: capacity (a first measurement, for the grid) " + ", ".join(
        f"N={n} {c:,.4g} q/s" if c < 1000 else f"N={n} {c:,.0f} q/s" for n, c in capacities.items() if c)
              + f"; {len(grid)} rates from {grid[0]:g} to {grid[-1]:g} q/s"
              + (f" (yours: {', '.join(f'{r:g}' for r in s.rates)})" if s.rates else "")
              + f", then each N's rho_max to {100 * PRECISION:.0f} %")
    return grid, capacities
