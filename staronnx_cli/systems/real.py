"""`--system staronnx` (and roundrobin) for real: worker threads running ONNX Runtime, the wall clock."""

from __future__ import annotations

import os
import platform as host
import time
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from ..errors import UserError
from ..ortenv import cuda_status
from ..runtime.calibration import Calibration, measure_workers
from ..runtime.executors import WORKER_NICE, ThreadExecutor
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel, cache_file
from ..runtime.scheduler import Scheduler
from ..runtime.transfer import DEFAULT_LINK
from ..runtime.workers import parse_workers
from .contract import BatchSizeSetup


@dataclass(frozen=True)
class RealConfig:
    workers: str  # the --workers spec
    seed: int = 0
    calibrate: bool = False  # start the performance models afresh
    cuda_graphs: bool = True
    variable_batches: bool = False  # --max-queue-delay: batches may close before N queries


class RealEngine:
    name = "real"
    loop_factory = RealLoop
    link = DEFAULT_LINK  # dmda's transfer figures (not measured on this machine yet)

    def __init__(self, config: RealConfig, part_files: list[Path], model_sha256: str, plan_sha256: str):
        status = cuda_status()
        self.config, self.part_files = config, part_files
        self.workers = parse_workers(config.workers, sorted(os.sched_getaffinity(0)), status.usable, status.reason)
        self.perf_file = cache_file(host.node(), model_sha256, plan_sha256, ort.__version__)
        self.notices: list[str] = []  # said once the sweep starts (e.g. a torn performance-model cache)
        self.perf = PerfModel() if config.calibrate else PerfModel.load(self.perf_file, self.notices.append)
        self.calibration: list[Calibration] = []
        self.graph_notes: list[str] = []

    def prepare(self, n: int) -> BatchSizeSetup:
        """Workers with warmed sessions for batch size n; S_w(n) of each worker kind alone, which also calibrates
        its performance models, before any point. A failure here (ONNX Runtime refusing the model at this batch
        size) fails this N's points, not the sweep."""
        try:
            executor = ThreadExecutor(RealLoop(), self.workers, self.part_files, n,
                                      variable_batches=self.config.variable_batches, seed=self.config.seed,
                                      cuda_graphs=self.config.cuda_graphs)
        except UserError as exc:
            return BatchSizeSetup(failure=str(exc))
        self.graph_notes = [f"N={n} {note}" for note in executor.graph_notes]
        services, log = measure_workers(executor, self.workers, self.perf, n, len(self.part_files))
        self.calibration.extend(log)
        if any(c.calibrated for c in log):
            self.perf.save(self.perf_file)
        return BatchSizeSetup(executor, "", services)

    def after_point(self) -> None:
        self.perf.save(self.perf_file)

    def runner(self, loop, executor, policy, graph):
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)

    def workers_label(self) -> str:
        return self.config.workers

    def metadata(self) -> dict:
        return {"perfmodel": str(self.perf_file), "calibrate": self.config.calibrate, "worker_nice": WORKER_NICE,
                "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "calibration": [c.to_json() for c in self.calibration]}
