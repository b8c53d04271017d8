"""`--engine sim`: the runtime's scheduler on a virtual clock, task times from a platform file (or this host's
performance models). No wall clock in what it writes: the same settings and seed give the same bytes."""

from __future__ import annotations

import platform as host
from dataclasses import dataclass, replace
from pathlib import Path

import onnxruntime as ort

from .. import modelio
from ..errors import UserError
from ..runtime.loop import VirtualLoop
from ..runtime.perfmodel import CALIBRATION_SAMPLES, PerfModel, Stats, cache_file
from ..runtime.platform import HOST_MODELS, Platform, TimeRow, check_times_target, groups_of, read_platform
from ..runtime.scheduler import Scheduler
from ..runtime.simtimes import PartTimes, part_times
from ..runtime.simulated import SimExecutor
from ..runtime.workers import WorkerSpec, parse_workers
from .contract import BatchSizeSetup, EngineLog, measure_all
from .target import Target


@dataclass(frozen=True)
class SimConfig:
    workers: str  # --workers, used without a platform file (with this host's performance models)
    platform: Path | None
    model_name: str  # for [[speeds]] rows that name models
    batch_sizes: tuple[int, ...]  # dmda's models are seeded for these
    seed: int = 0
    sim_noise: bool = False  # draw task times from the models' std (seeded)
    calibrate: bool = False  # start dmda's models empty and calibrate them in simulation
    trust_platform: bool = False  # the platform's [[times]] of the same split made again elsewhere (another sha256)
    inputs: tuple[str, ...] = ()  # per model, without a platform: which of this host's models (InputData.cache_key)


class SimEngine:
    name = "sim"
    loop_factory = VirtualLoop

    def __init__(self, config: SimConfig, target: Target):
        self.config, self.target = config, target
        if config.platform is not None:
            self.platform = read_platform(config.platform)
            mine = target.plan_sha256 or target.model_sha256
            if target.members and self.platform.times:
                raise UserError(f"platform '{config.platform}' gives [[times]] of one model's parts; a mix needs each "
                                "model's: use [[speeds]] with costs = \"costs_{model}.csv\", or drop --platform to "
                                "use this host's performance models")
            self.trusted = not target.members and check_times_target(
                self.platform, f"--platform {config.platform}", mine, len(target.part_files), config.trust_platform,
                target.model_sha256)
        else:
            self.platform, self.trusted = platform_from_cache(config.workers, target, config.inputs), False
        self.workers = platform_workers(self.platform)
        self.link = self.platform.link  # dmda predicts transfers with the figures the simulator charges
        try:
            self.times = mix_times(self.platform, target) if target.members and config.platform else \
                part_times(self.platform, target.part_files, config.model_name)
        except UserError as exc:  # no platform file was given: its fix is not one to edit
            if config.platform is not None:
                raise
            raise UserError(f"--engine sim without --platform simulates --workers {config.workers} with this "
                            f"host's performance models, and {str(exc).removeprefix('platform: ').split(':')[0]}: "
                            "sweep that layout for real here first, or give --platform FILE (docs/sim.md)") from None
        # dmda starts with the platform's times (StarPU's simulator does); --calibrate: from empty models,
        # calibrated in simulation before the points as the real engine does
        self.perf = PerfModel() if config.calibrate else seeded_perfmodel(self.times, self.workers,
                                                                          len(target.part_files), config.batch_sizes)
        self.log = EngineLog()

    def prepare(self, n: int | tuple[int, ...]) -> BatchSizeSetup:
        executor = SimExecutor(VirtualLoop(), self.workers, self.platform, self.times, self.target.graph,
                               self.config.seed if self.config.sim_noise else None)
        services, log = measure_all(executor, self.workers, self.perf, n, self.target, len(self.target.part_files))
        self.log.calibration.extend(replace(c, seconds=0.0) for c in log)  # no wall clock in a simulated run
        return BatchSizeSetup(executor, "", services)

    def after_point(self) -> None:
        pass

    def runner(self, loop, executor, policy, graph):
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)

    def host_times(self) -> dict[str, list[float]]:
        """Without a platform file: the task times this sweep simulates with ('part kind N' -> mean and std in s), from
        this host's performance models. A real sweep that learns more changes them; a --resume whose points would
        be simulated on other times than the earlier ones' is refused (only the times both use are compared: a real
        sweep of another batch size changes none of them)."""
        kinds = sorted({w.kind_key for w in self.workers})
        return {f"{part} {kind} {n}": [self.times.mean(part, kind, n), self.times.std(part, kind, n)]
                for part in range(len(self.target.part_files)) for kind in kinds for n in self.config.batch_sizes}

    def workers_label(self) -> str:
        return self.platform.workers_spec if self.config.platform else self.config.workers

    def metadata(self) -> dict:
        p = self.platform
        return {"platform": str(p.path) if p.path else HOST_MODELS,
                "platform_name": p.name,
                "platform_sha256": modelio.sha256_of(p.path) if p.path else None,
                **({} if p.path else {"host_times": self.host_times()}),
                "platform_estimate": p.estimate,
                "platform_trusted_from": p.target_sha256 if self.trusted else None,  # --trust-platform: their own
                "sim_noise": self.config.sim_noise,
                "calibrate": self.config.calibrate, "calibration": [c.to_json() for c in self.log.calibration]}


def platform_workers(p: Platform) -> list[WorkerSpec]:
    """Worker specs of a platform: GPUs numbered in order; CPU workers get core ids that only name them."""
    workers, gpu, core = [], 0, 0
    for g in p.workers:
        for _ in range(g.count):
            if g.on_gpu:
                workers += [WorkerSpec(g.kind.worker_name(gpu, j if g.streams > 1 else None), g.kind, (), gpu)
                            for j in range(g.streams)]
                gpu += 1
            else:
                cpu_index = sum(not w.on_gpu for w in workers)
                workers.append(WorkerSpec(g.kind.worker_name(cpu_index), g.kind, tuple(range(core, core + g.cores))))
                core += g.cores
    return workers


def mix_times(platform: Platform, target: Target) -> PartTimes:
    """A mix's task times: each model's own (its [[speeds]] costs named by {model}), parts numbered as in the mix."""
    table = {}
    for member in target.members:
        own = part_times(platform, member.target.part_files, member.name, in_mix=True)
        table.update({(part + member.first_part, kind): by_batch for (part, kind), by_batch in own.table.items()})
    return PartTimes(table)


def platform_from_cache(spec: str, target: Target, inputs: tuple[str, ...] = ()) -> Platform:
    """`--engine sim --workers SPEC` without a platform: this host's cached performance models of the target (of a
    mix: each model's, from its own cache file), learnt on the inputs `inputs` names per model ('' random)."""
    from ..ortenv import cuda_status

    # simulated workers are not bounded by this machine, but `auto` is this machine's layout (as a real sweep's)
    workers = parse_workers(spec, list(range(4096)), cuda_status().usable if spec.strip() == "auto" else True)
    named = [(m.name, m.target, m.first_part) for m in target.members] if target.members else [("", target, 0)]
    models = []
    for m, (name, one, first) in enumerate(named):
        perf_file = cache_file(host.node(), one.model_sha256, one.plan_sha256, ort.__version__,
                               inputs[m] if m < len(inputs) else "")
        said: list[str] = []
        perf = PerfModel.load(perf_file, said.append)
        if not perf.stats:
            model = f"model {name}" if name else "this model"
            if said:  # there, but not usable: said as such, not as missing
                raise UserError(f"the performance models of {model} on this host ({perf_file}) are unreadable (cut "
                                "short or edited): run a real sweep (it calibrates afresh and rewrites them), or give "
                                "--platform PLATFORM.toml")
            raise UserError(f"no performance models of {model} on this host ({perf_file.name}): run a real sweep "
                            "first, or give --platform PLATFORM.toml")
        models.append((perf, first))
    perf = PerfModel.merged(models)
    times = [TimeRow(part, kind, batch, 1000 * s.mean, 1000 * s.std) for (part, kind, batch), s in
             sorted(perf.stats.items()) if s.count > 0]
    return Platform(f"{host.node()} (cached performance models)", groups_of(workers), times=times)


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
