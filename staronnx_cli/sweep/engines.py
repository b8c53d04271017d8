"""The two engines a sweep can drive: `real` (threads running ONNX Runtime, wall clock) and `sim` (the same
scheduler on a virtual clock, task times from a platform). The runner only asks an engine for workers,
an executor and S(N) per batch size, its loop, and what to record in run.json."""

from __future__ import annotations

import math
import os
import platform as host
import time
from dataclasses import replace

import onnxruntime as ort

from .. import modelio
from ..errors import UserError
from ..ortenv import cuda_status
from ..runtime.calibration import Calibration, measure_workers
from ..runtime.executors import WORKER_NICE, ThreadExecutor
from ..runtime.loop import RealLoop, VirtualLoop
from ..runtime.perfmodel import CALIBRATION_SAMPLES, PerfModel, Stats, cache_file
from ..runtime.platform import Platform, TimeRow, WorkerGroup, read_platform
from ..runtime.scheduler import Scheduler
from ..runtime.simtimes import part_times
from ..runtime.simulated import SimExecutor
from ..runtime.workers import WorkerSpec, parse_workers
from .native import NativeSession, PlainLoop, check_native
from .target import Target


class RealEngine:
    name = "real"
    loop_factory = RealLoop

    def __init__(self, s, target: Target):
        status = cuda_status()
        self.settings, self.target = s, target
        self.workers = parse_workers(s.workers, sorted(os.sched_getaffinity(0)), status.usable, status.reason)
        self.perf_file = cache_file(host.node(), target.model_sha256, target.plan_sha256, ort.__version__)
        self.notices: list[str] = []  # said once the sweep starts (e.g. a torn performance-model cache)
        self.perf = PerfModel() if s.calibrate else PerfModel.load(self.perf_file, self.notices.append)
        self.calibration: list[Calibration] = []
        self.graph_notes: list[str] = []

    def prepare(self, n: int):
        """Workers with warmed sessions for batch size n; S_w(n) of each worker kind alone, which also calibrates
        its performance models, before any point. A failure here (ONNX Runtime refusing the model at this batch
        size) fails this N's points, not the sweep."""
        try:
            executor = ThreadExecutor(RealLoop(), self.workers, self.target.part_files, n,
                                      variable_batches=self.settings.max_queue_delay_ms is not None,
                                      seed=self.settings.seed, cuda_graphs=self.settings.cuda_graphs)
        except UserError as exc:
            return None, str(exc), None
        self.graph_notes = [f"N={n} {note}" for note in executor.graph_notes]
        services, log = measure_workers(executor, self.workers, self.perf, n, len(self.target.part_files))
        self.calibration.extend(log)
        if any(c.calibrated for c in log):
            self.perf.save(self.perf_file)
        return executor, "", services

    def after_point(self) -> None:
        self.perf.save(self.perf_file)

    def runner(self, loop, executor, policy, graph):
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)

    def metadata(self) -> dict:
        return {"perfmodel": str(self.perf_file), "calibrate": self.settings.calibrate, "worker_nice": WORKER_NICE,
                "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "calibration": [c.to_json() for c in self.calibration]}


class NativeEngine(RealEngine):
    """`--system native`: one ORT session, FIFO in a plain loop (no scheduler, no worker threads)."""

    def __init__(self, s, target: Target):
        super().__init__(s, target)
        check_native(self.workers, len(target.part_files))

    def prepare(self, n: int):
        try:
            session = NativeSession(self.workers[0], self.target.part_files[0], n, self.settings.seed)
        except UserError as exc:
            return None, str(exc), None
        service = session.service_time(0, n, 1)
        return session, "", [service] if math.isfinite(service) else None

    def after_point(self) -> None:
        pass  # no scheduler, no performance models

    def runner(self, loop, executor, policy, graph):
        return PlainLoop(loop, executor)

    def metadata(self) -> dict:
        return {"start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "native": "one ONNX Runtime session, batches first in first out in one plain loop"}


class SimEngine:
    """No wall clock in what it writes: the same settings and seed give the same bytes."""

    name = "sim"
    loop_factory = VirtualLoop

    def __init__(self, s, target: Target):
        self.settings, self.target = s, target
        if s.platform is not None:
            self.platform = read_platform(s.platform)
            mine = target.plan_sha256 or target.model_sha256
            if self.platform.target_sha256 and self.platform.target_sha256 != mine:
                raise UserError(f"platform '{s.platform}' holds task times of another model or plan (sha256 "
                                f"{self.platform.target_sha256[:12]}, this target {mine[:12]}): capture one from a "
                                "run of this target, or use [[speeds]]")
        else:
            self.platform = platform_from_cache(s.workers, target)
        self.workers = platform_workers(self.platform)
        self.times = part_times(self.platform, target.part_files, s.model_name or s.target.stem)
        # dmda starts with the platform's times (StarPU's simulator does); --calibrate: from empty models,
        # calibrated in simulation before the points as the real engine does
        self.perf = PerfModel() if s.calibrate else seeded_perfmodel(self.times, self.workers,
                                                                     len(target.part_files), s.batch_sizes)
        self.calibration: list[Calibration] = []

    def prepare(self, n: int):
        executor = SimExecutor(VirtualLoop(), self.workers, self.platform, self.times, self.target.graph,
                               self.settings.seed if self.settings.sim_noise else None)
        services, log = measure_workers(executor, self.workers, self.perf, n, len(self.target.part_files))
        self.calibration.extend(replace(c, seconds=0.0) for c in log)  # no wall clock in a simulated run
        return executor, "", services

    def after_point(self) -> None:
        pass

    def runner(self, loop, executor, policy, graph):
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)

    def metadata(self) -> dict:
        p = self.platform
        return {"platform": str(p.path) if p.path else "from this host's performance models",
                "platform_name": p.name, "platform_sha256": modelio.sha256_of(p.path) if p.path else None,
                "platform_estimate": p.estimate, "sim_noise": self.settings.sim_noise,
                "calibrate": self.settings.calibrate, "calibration": [c.to_json() for c in self.calibration]}


SYSTEMS = ("staronnx", "native", "roundrobin", "triton")


def make_engine(s, target: Target):
    if s.system not in SYSTEMS:
        raise UserError(f"--system '{s.system}' is unknown: choose {', '.join(SYSTEMS)}")
    if s.system in ("roundrobin", "native") and len(target.part_files) > 1:
        raise UserError(f"--system {s.system} runs the whole model: give the model, not a plan")
    if s.engine not in ("real", "sim"):
        raise UserError(f"--engine '{s.engine}' is unknown: choose real or sim")
    if s.engine == "sim":
        if s.system in ("native", "triton"):
            raise UserError(f"--system {s.system} runs for real only: drop --engine sim")
        return SimEngine(s, target)
    if s.platform is not None:
        raise UserError("--platform describes a machine for the simulator: add --engine sim")
    if s.system == "native":
        return NativeEngine(s, target)
    if s.system == "triton":
        from .triton import TritonEngine

        return TritonEngine(s, target)
    return RealEngine(s, target)


def policy_of(s) -> str:
    """The policy a system runs: roundrobin is the whole model on the first free worker (central FIFO)."""
    return {"roundrobin": "eager", "native": "fifo", "triton": "triton-dynamic-batcher"}.get(s.system, s.policy)


def platform_workers(p: Platform) -> list[WorkerSpec]:
    """Worker specs of a platform: GPUs numbered in order; CPU workers get core ids that only name them."""
    workers, gpu, core = [], 0, 0
    for g in p.workers:
        for _ in range(g.count):
            if g.kind == "cuda":
                workers.append(WorkerSpec(f"cuda{gpu}", "cuda", (), gpu))
                gpu += 1
            else:
                cpu_index = sum(w.kind == "cpu" for w in workers)
                workers.append(WorkerSpec(f"cpu{cpu_index}", "cpu", tuple(range(core, core + g.cores))))
                core += g.cores
    return workers


def platform_from_cache(spec: str, target: Target) -> Platform:
    """`--engine sim --workers SPEC` without a platform: this host's cached performance models of the target."""
    workers = parse_workers(spec, list(range(4096)), True)  # simulated workers are not bounded by this machine
    perf_file = cache_file(host.node(), target.model_sha256, target.plan_sha256, ort.__version__)
    perf = PerfModel.load(perf_file)
    if not perf.stats:
        raise UserError(f"no performance models of this model on this host ({perf_file.name}): run a real sweep "
                        "first, or give --platform PLATFORM.toml")
    groups: dict[tuple[str, int], int] = {}
    for w in workers:
        key = (w.kind, len(w.cores) or 1)
        groups[key] = groups.get(key, 0) + 1
    times = [TimeRow(part, kind, batch, 1000 * s.mean, 1000 * s.std) for (part, kind, batch), s in
             sorted(perf.stats.items()) if s.count > 0]
    return Platform(f"{host.node()} (cached performance models)", [WorkerGroup(k, c, cores) for (k, cores), c in
                                                                   groups.items()], times=times)


def seeded_perfmodel(times, workers: list[WorkerSpec], parts: int, batch_sizes) -> PerfModel:
    """dmda starts calibrated, as StarPU's simulator does: its models hold the platform's times."""
    perf = PerfModel()
    for kind in {w.kind_key for w in workers}:
        for part in range(parts):
            for n in batch_sizes:
                mean, std = times.mean(part, kind, n), times.std(part, kind, n)
                perf.stats[(part, kind, n)] = Stats(CALIBRATION_SAMPLES, mean, std ** 2 * (CALIBRATION_SAMPLES - 1),
                                                    True)
    return perf
