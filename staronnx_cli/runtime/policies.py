"""Scheduling policies: pure decisions (state and `now` in, a worker out), no threads, no clock of their own.

The runtime owns the queues and the bookkeeping; a policy only answers "where does this ready task go".
Returning None means "keep it in the central queue until a worker is idle" (eager).
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import UserError
from ..kinds import CPU, WorkerKind, kind_named
from .perfmodel import CALIBRATION_SAMPLES, PerfModel
from .transfer import DEFAULT_LINK, Link


class WorkerState(NamedTuple):  # NamedTuples: built for every decision, so cheap to make
    worker: int  # its index among the workers
    kind: str  # "cpu" / "cuda"
    kind_key: str  # performance-model key, e.g. "cpu:2"
    memory_node: str
    idle: bool
    expected_free_s: float  # when it should finish what it runs and has queued (engine time; past = free now)


class ReadyTask(NamedTuple):
    batch_index: int
    part: int
    batch_size: int
    input_bytes_by_node: dict[str, int]  # memory node -> bytes of this task's inputs valid there


class Policy:
    name = "policy"
    central = False  # True: tasks wait in one FIFO until a worker is idle (the runtime asks again then)
    ordered = False  # True: each worker's queue runs the most urgent task first, not the oldest
    by_launch = False  # ordered by the plan's launch order (earlier batch first), not by deadline
    uses_inputs = False  # True: it reads where the task's inputs are (the runtime works that out only then)
    kinds: list[WorkerKind] = []  # static: the worker kind each part is placed on (the sweep checks workers have them)
    local_part: list[int] | None = None  # static in a mix: each part's index within its own model
    link: Link | None = None  # dmda: the transfer figures it predicts with (the engine's)

    def choose(self, task: ReadyTask, workers: list[WorkerState], now: float, perf: PerfModel) -> int | None:
        raise NotImplementedError


class Eager(Policy):
    """Central FIFO: the first idle capable worker takes the task."""

    name, central = "eager", True

    def choose(self, task, workers, now, perf):
        return next((w.worker for w in workers if w.idle), None)


class RoundRobin(Policy):
    """Batches go to workers in turn (the baseline of the paper's related work); parts follow their batch."""

    name = "roundrobin"

    def choose(self, task, workers, now, perf):
        return workers[task.batch_index % len(workers)].worker


class Static(Policy):
    """`static:cuda,cpu`: part i runs on workers of the i-th kind (the last kind for later parts)."""

    name = "static"

    def __init__(self, kinds: list[WorkerKind]):
        self.kinds = kinds

    def choose(self, task, workers, now, perf):
        part = task.part if self.local_part is None else self.local_part[task.part]
        kind = self.kinds[min(part, len(self.kinds) - 1)]
        capable = [w for w in workers if w.kind == kind]
        if not capable:
            return None
        return min(capable, key=lambda w: (max(w.expected_free_s, now), w.worker)).worker


class Dmda(Policy):
    """StarPU's dmda / HEFT: the least expected end = max(free, now + transfer) + predicted execution.

    A worker kind with no prediction yet is chosen first, so every kind gets calibrated.
    """

    name, uses_inputs = "dmda", True
    link: Link  # always set: a dmda policy predicts transfers

    def __init__(self, link: Link = DEFAULT_LINK):
        self.link = link  # the platform's figures in simulation; the default on a real machine

    def choose(self, task, workers, now, perf):
        stats, part, batch = perf.stats, task.part, task.batch_size  # inlined lookups: called for every task
        total = sum(task.input_bytes_by_node.values())
        best_end, best = float("inf"), None
        for w in workers:
            s = stats.get((part, w.kind_key, batch))
            if s is None or s.count < CALIBRATION_SAMPLES:
                if w.idle:
                    return w.worker  # calibrate this kind now
                if s is None or s.count == 0:
                    continue
            missing = total - task.input_bytes_by_node.get(w.memory_node, 0)
            ready = now + self.link.seconds(missing)
            end = (w.expected_free_s if w.expected_free_s > ready else ready) + s.mean
            if end < best_end:
                best_end, best = end, w.worker
        if best is None:
            return next((w.worker for w in workers if w.idle), workers[0].worker)
        return best


class Deadline(Dmda):
    """Earliest deadline first: a task goes where dmda expects it to end first, and each worker runs the most
    urgent task it holds: the higher priority, then the earlier deadline (its batch's first arrival plus its
    model's latency target), then the order queued; a batch without a target has no deadline (after those with one).
    The ordering lives in the runtime's queues (scheduler.UrgencyQueue); the choice stays pure."""

    name, ordered = "deadline", True


class LaunchOrder(Dmda):
    """Opara's launch order: a task goes where dmda expects it to end first, and each worker runs, of the tasks it
    holds, the earliest batch's first, then the first in the plan's launch order (split --method branches: a
    topological order alternating memory- and compute-bound parts, so that what runs side by side is of both
    kinds). A plan without one runs its parts in their topological numbering."""

    name, ordered, by_launch = "opara", True, True


def check_policy_parts(spec: str, policy: Policy, parts: int) -> None:
    """A static policy naming more kinds than the model has parts was a typo: one line (sweep and campaign
    alike)."""
    if len(policy.kinds) > parts:
        raise UserError(f"--policy {spec} names {len(policy.kinds)} kinds for {parts} part(s): give one kind per "
                        "part (the last is used for any later part)")


def make_policy(spec: str, link: Link = DEFAULT_LINK) -> Policy:
    """A policy from --policy; `link`: the transfer figures dmda predicts with."""
    name, colon, arg = spec.partition(":")
    if name == "eager":
        return Eager()
    if name == "roundrobin":
        return RoundRobin()
    if name == "dmda":
        return Dmda(link)
    if name == "deadline":
        return Deadline(link)
    if name == "opara":
        return LaunchOrder(link)
    if name == "static":
        try:  # an empty one too: static: or static:cpu,,cpu
            kinds = [kind_named(k.strip()) for k in (arg if colon else str(CPU)).split(",")]
        except KeyError:
            raise UserError(f"--policy {spec}: static takes worker kinds per part, e.g. static:cuda,cpu") from None
        return Static(kinds)
    raise UserError(f"--policy '{spec}' is unknown: choose eager, roundrobin, dmda, deadline, opara or "
                    "static:KIND,KIND")
