"""One orchestrator for every sweep, a single model's or a mix's: the run directory made ready, each setup (a batch
size, or one size per model) prepared once, its points run or recorded as not run, each point's rows committed,
the executor closed, the machine's load recorded. What differs between the two lives behind `Grid`: which setups
and points there are, why some are not run, how one is measured and what its rows say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, Protocol

from ..hostload import counters, sample_load
from ..results.rundir import RunDir
from ..results.runmeta import RunMeta
from ..systems import BatchSizeSetup, Engine
from .progress import SweepProgress
from .settings import SweepSettings


class Grid(Protocol):
    """What a sweep measures. A setup is what `Engine.prepare` takes; a point what the grid measures under it."""

    @property
    def rows_per_point(self) -> int: ...  # points.csv rows one point commits, all or none (a mix: one per model)

    def plan(self, progress: SweepProgress) -> None: ...  # every point told to the progress bar
    def setups(self) -> Iterable[Any]: ...  # N, or one size per model, in order
    def wanted(self, key: Any) -> bool: ...  # False: every point of this setup is in the run already
    def blocked(self, key: Any, setup: BatchSizeSetup) -> str: ...  # why none of its points can run ('' if they can)
    def points(self, key: Any, setup: BatchSizeSetup) -> Iterator[Any]: ...  # still to measure (may grow as it goes)
    def skipped(self, key: Any, point: Any, congested_at: Any) -> str: ...  # why not run after a congested one
    def start(self, key: Any, point: Any, progress: SweepProgress) -> None: ...
    def measure(self, key: Any, point: Any, setup: BatchSizeSetup, progress: SweepProgress) -> list[dict]: ...
    def not_run(self, key: Any, point: Any, why: str, failure: str) -> list[dict]: ...
    def done(self, key: Any, point: Any, rows: list[dict]) -> None: ...  # its rows committed


def run_grid(s: SweepSettings, engine: Engine, meta: RunMeta, grid: Grid, on_point: Callable[[dict], None],
             on_progress: Callable[[SweepProgress], None], on_notice: Callable[[str], None]) -> list[dict]:
    """Every point of `grid`, setup by setup; a point's rows (a mix point: every model's) committed at once."""
    run = RunDir(s.output)
    since = start_run(s, engine, meta, on_notice, grid.rows_per_point)
    progress = SweepProgress(listener=on_progress)
    grid.plan(progress)
    rows: list[dict] = []
    for key in grid.setups():
        if not grid.wanted(key):
            continue
        setup = engine.prepare(key)
        record_calibration(run, engine)
        warn_rejected_graphs(engine, on_notice)
        try:
            blocked = "" if setup.failure else grid.blocked(key, setup)
            congested_at = None
            for point in grid.points(key, setup):
                grid.start(key, point, progress)
                why = blocked or ("" if setup.failure else grid.skipped(key, point, congested_at))
                if setup.failure or why:
                    point_rows = grid.not_run(key, point, why, setup.failure)
                else:
                    point_rows = grid.measure(key, point, setup, progress)
                    if congested_at is None and any(r["congested"] or failed_row(r) for r in point_rows):
                        congested_at = point  # a higher rate would only be slower, or fail as well
                run.append_points(point_rows)  # the commit
                engine.after_point()
                rows += point_rows
                grid.done(key, point, point_rows)
                progress.finish()
                for row in point_rows:
                    on_point(row)
        finally:
            if setup.executor is not None:
                setup.executor.close()
    if since is not None:
        record_load(run, "during", since, s.system == "triton")
    return rows


def start_run(s: SweepSettings, engine: Engine, meta: RunMeta, on_notice: Callable[[str], None],
              rows_per_point: int = 1):
    """The run directory made ready (started over with --force, repaired with --resume, run.json written) and the
    machine's load recorded at the start; returns the load counters (None on the virtual clock)."""
    for note in engine.log.notices:
        on_notice(note)
    for note in RunDir(s.output).start(meta, s.force, s.resume, rows_per_point):
        on_notice(note)
    watch_load = engine.name == "real"  # the virtual clock does not care how busy the machine is
    return record_load(RunDir(s.output), "start") if watch_load else None


def record_load(run: RunDir, when: str, since=None, server_elsewhere: bool = False):
    """run.json's machine_load: at the start, the machine over a short window; at the end, the other processes'
    CPU time over the whole sweep (not for Triton: its server is another process). Returns the counters."""
    start = counters()
    if not server_elsewhere:
        sample = sample_load(when, since)
        run.update_meta(lambda meta: replace(meta, machine_load=[*meta.machine_load, sample]))
    return start


def record_calibration(run: RunDir, engine: Engine) -> None:
    """run.json keeps what each worker kind ran alone before the points (and how long that took), and which
    parts GPU workers run as CUDA graphs."""
    log = engine.log
    if not run.run_json.exists():
        return

    def add(meta: RunMeta) -> RunMeta:
        seen = {json.dumps(c, sort_keys=True) for c in meta.calibration}
        meta = replace(meta, calibration=meta.calibration + [c.to_json() for c in log.calibration
                                                             if json.dumps(c.to_json(), sort_keys=True) not in seen])
        if log.graph_notes:
            meta = replace(meta, cuda_graph_parts=list(dict.fromkeys(meta.cuda_graph_parts + log.graph_notes)))
        links = log.link_measured
        if links:  # the host->device figures dmda predicted with, per GPU worker (platform from-run reads them)
            meta = replace(meta, transfer_measured={**meta.transfer_measured, **links}, transfer=engine.link.to_json())
        return meta

    run.update_meta(add)


def warn_rejected_graphs(engine: Engine, on_notice: Callable[[str], None]) -> None:
    """A part that could run as a CUDA graph but does not (capture failed, or its outputs disagreed) is a warning,
    with the difference found: the sweep goes on with the plain session, slower than it could be."""
    for note in engine.log.graph_rejections:
        on_notice(f"warning: no CUDA graph for {note}; the plain session serves it (--no-cuda-graphs says so "
                  "up front)")


def failed_row(row: dict) -> bool:
    """A point whose every batch failed (the workers refuse them): a higher rate fails as well."""
    return str(row.get("reason") or "").startswith("failed:") and not row.get("batches")
