"""The contract between a sweep and what runs its points. Four engines keep it, side by side in this package:
the runtime on the wall clock (real.py: systems staronnx and roundrobin) and on a virtual one (sim.py), and the
baselines: one ONNX Runtime session in a plain loop (native.py: systems native, ortparallel and ortstreams) and a
real Triton server (triton.py).

A sweep asks an Engine for its workers, then, batch size by batch size, for a prepared executor (`prepare`), and
for every point a Runner on a fresh loop (`runner`); the Runner releases the point's batches and returns their
records and why it stopped. Everything else (schedules, judging, files) is the sweep's and the same for every system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..load.schedule import BatchSchedule
from ..runtime.perfmodel import PerfModel
from ..runtime.scheduler import BatchRecord, Limits, PartGraph
from ..runtime.transfer import Link
from ..runtime.workers import WorkerSpec


class Loop(Protocol):
    """A clock and its events: `loop.VirtualLoop` (jumps) or `loop.RealLoop` (waits)."""

    def now(self) -> float: ...
    def schedule(self, at: float, callback: Callable, *args) -> None: ...


class Executor(Protocol):
    """Runs the scheduler's tasks on workers and calls `complete(w, k, part, start, end, ...)` through the loop.

    `needs_input_bytes`: the scheduler passes, with each task, the bytes of its inputs per memory node (the
    simulator charges their transfers). `measures`: task times are measured, so the performance models learn
    from them (a simulated time is the model's own: not learnt)."""

    needs_input_bytes: bool
    measures: bool
    loop: Loop  # set by the sweep before each point: a fresh loop, a fresh point

    def start(self, w: int, k: int, part: int, batch: int, complete: Callable, *inputs) -> None: ...
    def release_batch(self, k: int) -> None: ...
    def service_time(self, w: int, size: int, parts: int | range, runs: int = ..., on_task=None) -> float: ...
    def close(self) -> None: ...


class Runner(Protocol):
    """Releases a point's batches, in order, while `limits.may_release(k)`; stops at `limits.stop_reason` or when
    `watch(record)` of a finished batch says why; returns every record and the reason ('' when all ran)."""

    def run(self, schedule: BatchSchedule, limits: Limits,
            watch: Callable[[BatchRecord], str] | None = None) -> tuple[list[BatchRecord], str]: ...


def measure_all(executor, workers: list[WorkerSpec], perf: PerfModel, n, target, parts: int):
    """S_w(N) of each worker and the calibration log: of the model, or (`n` a tuple, one size per model of a mix
    `target`) of each model alone, as one list per model."""
    from ..runtime.calibration import measure_workers

    if not isinstance(n, tuple):
        return measure_workers(executor, workers, perf, n, parts)
    services, log = [], []
    for m, size in enumerate(n):
        mine, calibration = measure_workers(executor, workers, perf, size, target.parts_of(m))
        services.append(mine)
        log += calibration
    return services, log


@dataclass
class BatchSizeSetup:
    """What `Engine.prepare(n)` returns: the executor for batch size n, or why the workers cannot run it (the
    sweep then records that N's points as failed and goes on); and S_w(n), the service time of each worker alone
    (one number for a single-worker system; None when unknown; a mix: one list per model)."""

    executor: Any = None  # an Executor, or what the system's own Runner drives (a session, a Triton client)
    failure: str = ""
    services_s: list[float] | list[list[float]] | None = field(default=None)


@dataclass
class EngineLog:
    """What an engine tells the sweep besides its points, for run.json and the screen (empty for the baselines)."""

    notices: list[str] = field(default_factory=list)  # said once the sweep starts (a torn performance-model cache)
    calibration: list = field(default_factory=list)  # runtime.calibration.Calibration, per N and worker kind
    graph_notes: list[str] = field(default_factory=list)  # which parts GPU workers run as CUDA graphs
    graph_rejections: list[str] = field(default_factory=list)  # parts that could run as a graph but do not: warned
    link_measured: dict[str, dict] = field(default_factory=dict)  # GPU worker -> the host->device link it measured


class Engine(Protocol):
    """Read-only members (properties here): an engine's own may be narrower (a VirtualLoop factory)."""

    @property
    def name(self) -> str: ...  # "real" or "sim": which clock the run.json says
    @property
    def workers(self) -> list[WorkerSpec]: ...
    @property
    def perf(self) -> PerfModel: ...  # what dmda predicts with (empty for the baselines)
    @property
    def loop_factory(self) -> Callable[[], Loop]: ...
    @property
    def link(self) -> Link: ...  # the transfer figures dmda predicts with (a platform's in simulation)
    @property
    def log(self) -> EngineLog: ...

    def prepare(self, n: int | tuple[int, ...]) -> BatchSizeSetup: ...  # a mix: one size per model
    def runner(self, loop: Loop, executor: Any, policy, graph: PartGraph) -> Runner: ...
    def after_point(self) -> None: ...
    def metadata(self) -> dict: ...
    def workers_label(self) -> str: ...
