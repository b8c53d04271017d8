"""`--system staronnx` (and roundrobin) for real: worker threads running ONNX Runtime, the wall clock."""

from __future__ import annotations

import os
import platform as host
import time
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from ..errors import UserError, baked_batch_hint, ort_reason
from ..inputdata import InputData
from ..ortenv import cuda_status
from ..runtime import core, hotwait
from ..runtime.executors import WORKER_NICE, ExecutorOptions, ThreadExecutor
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel, cache_file
from ..runtime.realtime import issuer_priority_level
from ..runtime.scheduler import Scheduler
from ..runtime.transfer import DEFAULT_LINK, slowest
from ..runtime.workers import parse_workers
from .contract import BatchSizeSetup, EngineLog, measure_all
from .target import Target


@dataclass(frozen=True)
class RealConfig:
    workers: str  # the --workers spec
    seed: int = 0
    calibrate: bool = False  # start the performance models afresh
    cuda_graphs: bool = True
    variable_batches: bool = False  # --max-queue-delay: batches may close before N queries
    memory_limits: dict | None = None  # worker name -> bytes its sessions may hold (--memory-limit)
    policy: str = "dmda"  # the policy its points run (the native core runs dmda, eager, roundrobin, opara)
    input_data: tuple[InputData, ...] = ()  # per model (--input-data; a mix: each model's)


def unwritable_cache(paths: list[Path]) -> str:
    """'' where the performance-model cache files can be written; else the notice that they will not be."""
    from ..outputfile import ready_to_write

    for path in paths:
        try:
            ready_to_write(path)
        except OSError as exc:
            return (f"warning: the performance-model cache '{path.parent}' cannot be written ({exc.strerror}): what "
                    "this sweep learns of the task times is kept in memory only; set STARONNX_CACHE to a folder you "
                    "can write to keep it for the next sweep")
    return ""


class RealEngine:
    name = "real"
    loop_factory = RealLoop

    def __init__(self, config: RealConfig, part_files: list[Path], model_sha256: str, plan_sha256: str,
                 target: Target | None = None):
        status = cuda_status()
        self.config, self.part_files, self.target = config, part_files, target
        self.workers = parse_workers(config.workers, sorted(os.sched_getaffinity(0)), status.usable, status.reason)
        self.log = EngineLog()
        # a mix keeps each model's models in that model's own cache file (shared with its single-model sweeps)
        members = target.members if target is not None and target.members else None
        data = [d.cache_key() for d in config.input_data]  # per model: what it is fed
        self.perf_files = [(cache_file(host.node(), m.target.model_sha256, m.target.plan_sha256, ort.__version__,
                                       data[i] if i < len(data) else ""), m.first_part, len(m.target.part_files))
                           for i, m in enumerate(members)] if members else \
            [(cache_file(host.node(), model_sha256, plan_sha256, ort.__version__, data[0] if data else ""), 0,
              len(part_files))]
        self.perf_file = self.perf_files[0][0]
        self.perf_unsaved = unwritable_cache([f for f, _, _ in self.perf_files])
        if self.perf_unsaved:  # a read-only or shared cache: the sweep runs, its calibrations kept in memory only
            self.log.notices.append(self.perf_unsaved)
        self.perf = PerfModel() if config.calibrate else PerfModel.merged(
            [(PerfModel.load(f, self.log.notices.append), first) for f, first, _ in self.perf_files])
        self.link = DEFAULT_LINK  # dmda's transfer figures: the GPU workers' own once measured (prepare)
        # the native core runs the points where it can (CPU workers, one model, dmda/eager/roundrobin/opara)
        self.python_path = core.ineligible(self.workers, config.policy, bool(members))
        self.issuer_level = ""

    def prepare(self, n: int | tuple[int, ...]) -> BatchSizeSetup:
        """Workers with warmed sessions for batch size n (a mix: one per model); S_w(n) of each worker kind alone,
        which also calibrates its performance models, before any point. A failure here (ONNX Runtime refusing
        the model at this batch size) fails this N's points, not the sweep."""
        sizes = list(n) if isinstance(n, tuple) else n
        options = ExecutorOptions(variable_batches=self.config.variable_batches, seed=self.config.seed,
                                  input_data=self.config.input_data,
                                  model_outputs=self.target.graph.model_outputs if self.target is not None else (),
                                  cuda_graphs=self.config.cuda_graphs, memory_limits=self.config.memory_limits)
        try:
            executor = self._executor(sizes, options)
        except UserError as exc:
            largest = max(sizes) if isinstance(sizes, list) else sizes
            return BatchSizeSetup(failure=f"{exc}{baked_batch_hint(largest, str(exc))}")
        self.log.graph_notes = [f"N={n} {note}" for note in executor.graph_notes]
        self.log.graph_rejections = [f"N={n} {note}" for note in executor.graph_rejections]
        if executor.links:  # the slowest GPU link: a transfer to any GPU is predicted no faster than it goes
            self.link = slowest(list(executor.links.values())) or self.link
            self.log.link_measured = {name: link.to_json() for name, link in executor.links.items()}
        services, log = measure_all(executor, self.workers, self.perf, n, self.target, len(self.part_files))
        self.log.calibration.extend(log)
        if any(c.calibrated for c in log):
            self.after_point()
        return BatchSizeSetup(executor, "", services)

    def _executor(self, sizes, options: ExecutorOptions):
        if not self.python_path:
            try:
                executor = core.CoreExecutor(self.workers, self.part_files, sizes, options)
            except RuntimeError as exc:
                raise UserError(f"the workers cannot prepare their sessions: {ort_reason(exc)}") from None
            self.issuer_level = executor.issuer_level()
            return executor
        return ThreadExecutor(RealLoop(), self.workers, self.part_files, sizes,
                              self.target.graph.models if self.target is not None else None, options)

    def after_point(self) -> None:
        if self.perf_unsaved:
            return
        for path, first, count in self.perf_files:
            (self.perf if len(self.perf_files) == 1 else self.perf.parts(first, count)).save(path)

    def runner(self, loop, executor, policy, graph):
        if policy.link is not None:  # dmda predicts transfers with what this machine's GPU workers measured
            policy.link = self.link
        if isinstance(executor, core.CoreExecutor):
            return core.CoreRunner(executor, policy, self.perf, graph.launch_order)
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)

    def hot_path(self) -> str:
        """run.json's hot_path: the native core, or the Python scheduler and why."""
        if not self.python_path:
            return "native core"
        return f"python scheduler ({self.python_path}; {'native' if hotwait.NATIVE else 'python'} waits)"

    def workers_label(self) -> str:
        return self.config.workers

    def metadata(self) -> dict:
        return {"perfmodel": str(self.perf_file), "calibrate": self.config.calibrate, "worker_nice": WORKER_NICE,
                "issuer_priority": self.issuer_level or issuer_priority_level(), "hot_path": self.hot_path(),
                "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "calibration": [c.to_json() for c in self.log.calibration]}
