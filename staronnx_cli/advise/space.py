"""What `advise` searches: candidates (a target, a worker layout, a policy, a batch size), and the layouts a
machine offers. Plain data: the search, the simulator and the real confirmation all take these."""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("dmda", "eager")
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
OFFLOADS = (0.05, 0.10, 0.15)
PARTS = (2, 3)  # each offload as a chain of 2 parts, and of 3
STREAMS = (2,)  # a branch plan in 2 streams (split --method branches), where the model has parallel branches


@dataclass(frozen=True)
class Target:
    """The whole model or one split of it, as `sweep` takes it."""

    key: str  # "whole", "split10" (10 % offloaded, 2 parts), "split10p3" (in 3 parts), "branches2", ...
    path: str  # a model file or a plan directory
    parts: int = 1
    offload: float = 0.0
    streams: int = 0  # a branch plan's streams (0: the whole model or a chain)


@dataclass(frozen=True)
class Candidate:
    target: Target
    layout: str  # --workers syntax
    policy: str
    batch_size: int

    @property
    def name(self) -> str:
        """Unique and file-name safe: whole_cpu-2x1_dmda_N4."""
        return f"{self.target.key}_{self.layout.replace(':', '-').replace(',', '+')}_{self.policy}_N{self.batch_size}"

    @property
    def what(self) -> str:
        """What runs, in words."""
        if self.target.parts == 1:
            return "whole model"
        if self.target.streams and workers_in(self.layout) == 1:
            return f"branch plan of {self.target.parts} parts, all on one worker (its branches one after the other)"
        if self.target.streams:
            return f"branch plan of {self.target.parts} parts ({self.target.streams} streams)"
        if workers_in(self.layout) == 1:  # a plan whose parts all run on the one worker: nothing offloaded
            return f"whole model as its {self.target.parts} parts, all on one worker (no offload)"
        return f"{self.target.parts} parts ({self.target.offload:.0%} offloaded)"

    @property
    def setup(self) -> str:
        """What a user would type, in words."""
        return f"{self.what}, --workers {self.layout}, --policy {self.policy}, N={self.batch_size}"


def worker_kinds(layout: str) -> list[str]:
    """The kind key of each worker of a layout, as the runtime parses it: cpu:2x1 -> [cpu:1, cpu:1];
    cuda:0x2,cpu:1x14 -> [cuda, cuda, cpu:14] (core ids are not this machine's: any layout may be simulated)."""
    from ..runtime.workers import parse_workers

    return [w.kind_key for w in parse_workers(layout, list(range(4096)), True)]


def workers_in(layout: str) -> int:
    return len(worker_kinds(layout))


def machine_layouts(cores: int, gpus: int, per_gpu: tuple[int, ...] = (1,)) -> list[str]:
    """Every way to use the machine whole: CPU cores in G equal groups of K (G x K = the cores left), alone or
    beside each GPU count with W workers per GPU (one core kept back per GPU to drive it); each GPU alone too.
    advise keeps one worker per GPU: the simulator gives every worker a device of its own, so W workers sharing
    one GPU would be predicted W times its capacity."""
    def cpu_groups(n: int) -> list[str]:
        return [f"cpu:{n // k}x{k}" for k in range(1, n + 1) if n % k == 0]

    layouts = cpu_groups(cores) if cores > 0 else []
    for w in per_gpu if gpus else ():
        gpu = ",".join(f"cuda:{g}" + (f"x{w}" if w > 1 else "") for g in range(gpus))
        layouts.append(gpu)
        left = cores - gpus
        layouts += [f"{gpu},{cpu}" for cpu in cpu_groups(left)] if left > 0 else []
    return list(dict.fromkeys(layouts))


def candidates(targets: list[Target], layouts: list[str], batch_size: int,
               policies: tuple[str, ...] = POLICIES) -> list[Candidate]:
    """Every (target, layout, policy) at one batch size. A layout of one worker runs one policy (they all place
    every task on it); a plan of several parts runs on a single worker only when the whole model is not a
    candidate (a platform's times of a plan): there its parts run one after the other, never better than the
    whole model, but that is the only way to weigh one worker alone against the split."""
    whole = any(t.parts == 1 for t in targets)
    found = []
    for target in targets:
        for layout in layouts:
            several = workers_in(layout) > 1
            if target.parts > 1 and not several and whole:
                continue
            for policy in policies if several else policies[:1]:
                found.append(Candidate(target, layout, policy, batch_size))
    return found
