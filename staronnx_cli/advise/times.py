"""Task times for the search: this host's performance models (calibrated with short real runs where missing, the
time said before it is spent) or a platform file's; and the two bounds that prune candidates without simulating
them."""

from __future__ import annotations

import math
import platform as host
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..inputdata import RANDOM, InputData
from ..kinds import key_on_gpu
from ..runtime.calibration import SERVICE_RUNS
from ..runtime.perfmodel import CALIBRATION_SAMPLES, PerfModel, cache_file
from ..runtime.simtimes import PartTimes
from ..systems.target import Target as LoadedTarget
from ..systems.target import load_target
from .space import Candidate, Target, worker_kinds

RUNS = max(SERVICE_RUNS, CALIBRATION_SAMPLES + 1)  # batches a worker kind runs alone to calibrate (and warm-up)


@dataclass
class HostTimes:
    """This host's performance models, one file per target (as the real engine keeps them)."""

    targets: dict[str, LoadedTarget]  # target key -> its part files and sha256s
    held: dict[str, PerfModel] | None = None  # frozen(): the models as they were then, not the cache's now
    data: InputData = RANDOM  # what calibration feeds the model (advise --input-data)

    @classmethod
    def of(cls, targets: list[Target], data: InputData = RANDOM) -> HostTimes:
        return cls({t.key: load_target(Path(t.path)) for t in targets}, data=data)

    def frozen(self) -> HostTimes:
        """These times as they are now: the real confirmations go on to relearn the host's models (a busy machine's
        times then read as the ones the predictions used, and advice.md showed two parts' 0.115 ms beside a
        prediction made from their 0.055 ms)."""
        return HostTimes(self.targets, {key: self._perf(key) for key in self.targets}, self.data)

    def _perf(self, key: str) -> PerfModel:
        import onnxruntime as ort

        if self.held is not None:
            return self.held[key]
        loaded = self.targets[key]
        return PerfModel.load(cache_file(host.node(), loaded.model_sha256, loaded.plan_sha256, ort.__version__,
                                         self.data.cache_key()))

    def part_s(self, key: str, n: int) -> dict[str, list[float | None]]:
        """kind -> the time of each part at batch n (None where not calibrated)."""
        perf, parts = self._perf(key), len(self.targets[key].part_files)
        kinds = {k for (_, k, b) in perf.stats if b == n}
        return {k: [perf.predict(p, k, n) if perf.calibrated(p, k, n) else None for p in range(parts)] for k in kinds}

    def missing(self, key: str, kinds: set[str], n: int) -> set[str]:
        have = self.part_s(key, n)
        return {k for k in kinds if k not in have or any(t is None for t in have[k])}

    def forget(self) -> list[Path]:
        """advise --recalibrate: this host's cached models of these targets removed (each is calibrated afresh:
        their means were running averages of every earlier run's tasks, a busy machine's too); the files removed."""
        import onnxruntime as ort

        removed = []
        for loaded in self.targets.values():
            path = cache_file(host.node(), loaded.model_sha256, loaded.plan_sha256, ort.__version__,
                              self.data.cache_key())
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed

    def calibrate(self, key: str, kind: str, n: int) -> str:
        """Short real runs of one worker of `kind` alone at batch n (the real engine's calibration, saved in the
        host's cache); returns why it failed ('' when it did not)."""
        from ..systems.real import RealConfig, RealEngine

        loaded = self.targets[key]
        layout = "cuda:0" if key_on_gpu(kind) else f"cpu:1x{kind.split(':')[1]}"
        engine = RealEngine(RealConfig(layout, input_data=(self.data,)), loaded.part_files, loaded.model_sha256,
                            loaded.plan_sha256)
        setup = engine.prepare(n)
        if setup.executor is not None:
            setup.executor.close()
        engine.after_point()
        return setup.failure


@dataclass
class PlatformTimes:
    """A platform file's times (for the one target they were measured on)."""

    times: PartTimes
    parts: int

    def part_s(self, key: str, n: int) -> dict[str, list[float | None]]:
        out: dict[str, list[float | None]] = {}
        for kind in self.times.kinds():
            try:
                out[kind] = [self.times.mean(p, kind, n) for p in range(self.parts)]
            except KeyError:
                continue
        return out

    def missing(self, key: str, kinds: set[str], n: int) -> set[str]:
        return {k for k in kinds if k not in self.part_s(key, n)}

    def frozen(self) -> PlatformTimes:
        return self  # a file's times do not change


def calibration_estimate_s(missing: list[tuple[Target, str]], n: int, one_run_s: float, cores: int) -> float:
    """Seconds to calibrate these (target, kind) at batch n: RUNS batches of n, a kind of K cores taking about
    cores / K times the all-core run (plus a second per kind for its sessions)."""
    total = 0.0
    for _, kind in missing:
        share = cores / int(kind.split(":")[1]) if not key_on_gpu(kind) else 1.0
        total += RUNS * n * one_run_s * share + 1.0
    return total


def calibrate_all(times: HostTimes, missing: list[tuple[Target, str]], n: int, on_step) -> list[str]:
    failures = []
    for target, kind in missing:
        on_step(f"calibrating {target.key} on {kind} at N={n}")
        started = time.perf_counter()
        failure = times.calibrate(target.key, kind, n)
        if failure:
            failures.append(f"{target.key} on {kind} at N={n}: {failure}")
        on_step(f"calibrated {target.key} on {kind} at N={n} in {time.perf_counter() - started:.1f} s")
    return failures


@dataclass(frozen=True)
class Bounds:
    capacity_qps: float  # no schedule serves more (inf: unknown)
    latency_ms: float  # no schedule answers sooner at the given rate (without the formation time)


def bounds(c: Candidate, part_s: dict[str, list[float | None]]) -> Bounds | None:
    """What the candidate can do at best, from its task times (None: a time is missing). A batch's critical path
    is at least each part on its fastest kind; a whole model serves at most N x sum_w 1 / S_w(N); a plan at most
    N x workers / (its least total work per batch)."""
    kinds = worker_kinds(c.layout)
    known: dict[str, list[float]] = {}
    for k in set(kinds):
        row = part_s.get(k)
        if row is None or any(t is None or not t > 0 for t in row):  # missing, or a platform extrapolated to 0
            return None
        known[k] = [float(t) for t in row if t is not None]
    parts = len(next(iter(known.values())))
    fastest = [min(known[k][p] for k in known) for p in range(parts)]
    least_work = sum(fastest)
    capacity: float
    if parts == 1:
        capacity = c.batch_size * sum(1.0 / known[k][0] for k in kinds)
    else:
        capacity = c.batch_size * len(kinds) / least_work
    return Bounds(capacity if math.isfinite(capacity) else math.inf, 1000 * least_work)


def check_budget(estimate_s: float, budget_left_s: float, n: int) -> None:
    if estimate_s > budget_left_s:
        raise UserError(f"--budget-s: calibrating N={n} takes about {estimate_s:.0f} s, more than the "
                        f"{budget_left_s:.0f} s left: raise --budget-s, or give fewer --batch sizes or --offload "
                        "fractions")


FALLING = 1.25  # a task time per batch this many times the one of a larger batch: learnt on a busy machine


def falling_times(times, keys: list[str], batch_sizes: tuple[int, ...]) -> list[str]:
    """Task times that fall as the batch grows (a part's time for N=1 above its time for N=2 by FALLING or more):
    a batch of more queries does not run faster, so the smaller batch's time was learnt in a slow spell, and the
    predictions resting on it are off. One note per target, the worst pair named."""
    notes = []
    for key in keys:
        worst: tuple[float, str] | None = None
        for small, large in zip(sorted(batch_sizes), sorted(batch_sizes)[1:]):
            low, high = times.part_s(key, small), times.part_s(key, large)
            for kind in sorted(set(low) & set(high)):
                for part, (a, b) in enumerate(zip(low[kind], high[kind])):
                    if a and b and a > FALLING * b and (worst is None or a / b > worst[0]):
                        worst = (a / b, f"{kind}, part {part}: N={small} {1000 * a:.3g} ms, N={large} "
                                        f"{1000 * b:.3g} ms")
        if worst is not None:
            notes.append(f"the task times of {key} fall as the batch grows ({worst[1]}): the smaller batch's were "
                         "learnt while the machine was busy, and the predictions resting on them are off; advise "
                         "again with --recalibrate on a quiet machine")
    return notes
