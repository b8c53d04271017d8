"""The runtime's scheduler: batches become tasks, ready tasks go where the policy says, completions free workers.

Engine-independent: it talks to a loop (clock and events) and an executor (how a task's run comes about:
threads running ONNX Runtime, or a duration from a performance model). Times are seconds from the point's t0.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from ..load.schedule import BatchSchedule
from .perfmodel import PerfModel
from .policies import Policy, ReadyTask, WorkerState
from .workers import HOST, WorkerSpec


@dataclass(frozen=True)
class PartGraph:
    """Parts of the model and which parts each one needs (a chain or a DAG), with bytes per sample of inputs."""

    deps: list[list[int]]  # part -> parts whose outputs it reads
    input_bytes_per_sample: list[dict[int, int]]  # part -> {source part (-1 = model input): bytes per sample}
    final_output_bytes_per_sample: list[int] | None = None  # part -> bytes of model outputs it writes
    models: list[int] | None = None  # part -> the model it belongs to, in a mix (None: one model)
    launch_order: list[int] | None = None  # a branch plan's parts in Opara's launch order (None: their numbering)
    model_outputs: tuple[str, ...] = ()  # a plan's model outputs (one a later part reads too is still returned)

    @classmethod
    def single(cls) -> PartGraph:
        return cls([[]], [{-1: 0}])

    @classmethod
    def union(cls, graphs: list[PartGraph]) -> PartGraph:
        """Several models' graphs as one, parts numbered model after model: one scheduler runs a mix."""
        deps, sizes, final, models, offset = [], [], [], [], 0
        outputs: list[str] = []
        for m, g in enumerate(graphs):
            outputs += g.model_outputs
            deps += [[d + offset for d in ds] for ds in g.deps]
            sizes += [{(s + offset if s >= 0 else s): b for s, b in per.items()} for per in g.input_bytes_per_sample]
            final += g.final_output_bytes_per_sample or [0] * len(g.deps)
            models += [m] * len(g.deps)
            offset += len(g.deps)
        return cls(deps, sizes, final, models, model_outputs=tuple(outputs))

    def parts_of(self) -> list[list[int]]:
        """Model -> its parts (one model: every part)."""
        if self.models is None:
            return [list(range(len(self.deps)))]
        out: list[list[int]] = [[] for _ in range(max(self.models, default=-1) + 1)]
        for part, m in enumerate(self.models):
            out[m].append(part)
        return out


class TaskRecord(NamedTuple):  # one per task: a tuple is cheap to make
    part: int
    worker: int
    start_s: float
    end_s: float
    transfer: tuple[float, float] | None = None  # a GPU task's input copies (issued ahead, while others ran)


@dataclass(slots=True)
class BatchRecord:
    index: int
    first_arrival_s: float
    scheduled_release_s: float
    size: int = 1  # queries in the batch
    first_query: int = 0  # index of its first query in the arrival array
    actual_release_s: float = float("nan")
    end_s: float = float("nan")
    tasks: list[TaskRecord] = field(default_factory=list)
    error: str = ""
    model: int = 0  # in a mix, the model whose batch it is
    deadline_s: float = math.inf  # its first query's arrival + its model's latency target (the deadline policy)
    priority: int = 0  # its model's priority (higher first, under the deadline policy)


def records_of(schedule: BatchSchedule) -> list[BatchRecord]:
    """One empty record per batch of the schedule (whatever then runs the batches fills them in)."""
    records = [BatchRecord(k, float(schedule.first_arrival_s[k]), float(schedule.release_s[k]),
                           int(schedule.sizes[k]), int(schedule.first_query[k])) for k in range(schedule.batches)]
    if schedule.models is not None:  # a mix's schedule: models, deadlines and priorities together
        assert schedule.deadline_s is not None and schedule.priority is not None
        for record, m, deadline, priority in zip(records, schedule.models, schedule.deadline_s, schedule.priority):
            record.model, record.deadline_s, record.priority = int(m), float(deadline), int(priority)
    return records


class UrgencyQueue:
    """A worker's queue under the deadline policy: the most urgent task first, by (priority high to low, deadline
    early to late, arrival order); the FIFO queue's interface (append, popleft, iteration, clear)."""

    def __init__(self, urgency: Callable[[tuple[int, int]], tuple]):
        self.urgency, self.order = urgency, itertools.count()
        self.heap: list[tuple] = []

    def append(self, task: tuple[int, int]) -> None:
        heapq.heappush(self.heap, (self.urgency(task), next(self.order), task))

    def popleft(self) -> tuple[int, int]:
        return heapq.heappop(self.heap)[2]

    def __iter__(self):
        return (entry[2] for entry in self.heap)

    def __len__(self) -> int:
        return len(self.heap)

    def clear(self) -> None:
        self.heap.clear()


@dataclass
class Limits:
    """When a point stops: congestion bounds, and how many of the schedule's batches it releases.

    A point releases `planned` batches; there, `extend()` may grant `step` more (a queue still filling
    toward its steady state is judged once it got there), as often as it says yes.
    """

    max_backlog: int  # released but unfinished batches beyond which the point is congested
    time_cap_s: float  # engine time beyond which the point is congested
    planned: int | None = None  # batches released before `extend` is asked (None: the whole schedule)
    step: int = 0
    extend: Callable[[], bool] | None = None

    def may_release(self, k: int) -> bool:
        """Whether batch k (released in order) is released."""
        if self.planned is None or k < self.planned:
            return True
        if k == self.planned and self.step > 0 and self.extend is not None and self.extend():
            self.planned += self.step
            return True
        return False

    def stop_reason(self, unfinished: int, now: float) -> str:
        """The one stop rule of every system: more released batches unfinished than the bound, or past the time
        cap; '' while neither."""
        if unfinished > self.max_backlog:
            return f"backlog of {unfinished} unfinished batches (> {self.max_backlog})"
        if now > self.time_cap_s:
            return f"time cap of {self.time_cap_s:.1f} s reached"
        return ""


class Scheduler:
    def __init__(self, loop, executor, workers: list[WorkerSpec], policy: Policy, perf: PerfModel, parts: PartGraph):
        self.loop, self.executor, self.workers, self.policy, self.perf, self.parts = (
            loop, executor, workers, policy, perf, parts)
        ordered = policy.ordered
        self.queues: list = [UrgencyQueue(self._urgency) if ordered else deque() for _ in workers]
        self.central: deque = deque()
        # tasks handed to the executor, oldest first: with a queue of its own (dmda, static, roundrobin) a
        # worker also holds its next task, so it starts without waiting for this loop (StarPU prefetches too).
        # Ordered queues hand over as late as they can (a GPU keeps one ahead for its copies): a task handed
        # over can no longer be overtaken by a more urgent one
        self.inflight: list[deque] = [deque() for _ in workers]
        self.depth = [1 if policy.central or (ordered and not w.on_gpu) else 2 if ordered else 4
                      for w in workers]
        self.pass_inputs = executor.needs_input_bytes  # the contract: systems/contract.py
        self.learns = executor.measures  # a simulated task's time is the model's own: not learnt
        self.kind_keys = [w.kind_key for w in workers]  # looked up for every task: computed once
        self.nodes = [w.memory_node for w in workers]
        # a policy weighs where a task's inputs are only where that can differ between workers: all on the host,
        # every input is where every worker is, and the bytes per node are not worth computing for every task
        # (GPU workers all on one device still are: the model's inputs come from the host)
        self.weighs_inputs = policy.uses_inputs and (len(set(self.nodes)) > 1 or any(n != HOST for n in self.nodes))
        self.model_parts = [frozenset(ps) for ps in parts.parts_of()]
        self.model_roots = [[p for p in sorted(ps) if not parts.deps[p]] for ps in self.model_parts]
        self.successors = [[n for n, deps in enumerate(parts.deps) if p in deps] for p in range(len(parts.deps))]
        self.dep_sets = [set(deps) for deps in parts.deps]
        self.ready: dict[tuple[int, int], ReadyTask] = {}  # computed at dispatch, handed to the executor later
        order = parts.launch_order or list(range(len(parts.deps)))
        self.launch_rank = {p: i for i, p in enumerate(order)} if policy.by_launch else None
        if self.launch_rank is not None:  # a part's successors dispatched in launch order too
            self.successors = [sorted(s, key=self.launch_rank.__getitem__) for s in self.successors]
        self._state_cache: list[WorkerState | None] = [None] * len(workers)
        self.expected_free = [0.0] * len(workers)
        self.pending_s = [0.0] * len(workers)  # predicted time of what each worker holds (queued and in flight)
        self.predicted: dict[tuple[int, int], float] = {}
        self.where: dict[tuple[int, int], str] = {}  # (batch, part) -> memory node of its outputs

    # -- one point ---------------------------------------------------------------------------------
    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        """Release every batch on time, run its tasks, stop early on congestion. Returns records and why
        the point was congested ('' if it was not). `watch(record)` is called as each batch finishes and
        may return a reason to stop (e.g. latency growing with k)."""
        self.records = records_of(schedule)
        self.remaining: dict[int, set[int]] = {}
        self.done_parts: dict[int, set[int]] = {}
        self.released = 0
        self.releasing = bool(self.records)  # until the last batch the limits allow is released
        self.closed: set[int] = set()  # batches finished or abandoned
        self.stop_reason = ""
        self.watch = watch
        self.limits = limits
        if self.records:
            self.loop.schedule(self.records[0].scheduled_release_s, self._release, 0)
        collecting = gc.isenabled()
        gc.disable()  # no pauses inside a point (and no scans of its growing records); collected right after
        self.loop.start_clock()  # the records are built: the point's time starts now
        try:
            self._loop_until_done()
        finally:
            self.loop.stop_clock()
            if collecting:
                gc.enable()
        return self.records, self.stop_reason

    def _loop_until_done(self) -> None:
        while not self._over():
            event = self.loop.wait_next()
            if event is None:
                break
            self.loop.call(*event)

    def _over(self) -> bool:
        """Every released batch closed, and nothing more to release (or a reason to stop)."""
        return len(self.closed) >= self.released and not (self.releasing and not self.stop_reason)

    def _release(self, k: int) -> None:
        if self.stop_reason:
            self.releasing = False
            return
        record = self.records[k]
        record.actual_release_s = self.loop.now()
        self.released += 1
        self.remaining[k] = set(self.model_parts[record.model])
        self.done_parts[k] = set()
        for part in self.model_roots[record.model]:
            self._dispatch(k, part)
        self.stop_reason = self.limits.stop_reason(self.released - len(self.closed), self.loop.now())
        if self.stop_reason:
            self.releasing = False
            self._drop_queued()
        elif k + 1 < len(self.records) and self.limits.may_release(k + 1):
            self.loop.schedule(self.records[k + 1].scheduled_release_s, self._release, k + 1)
        else:
            self.releasing = False

    def _drop_queued(self) -> None:
        """Congested: forget tasks not started yet (their batches never finish); running ones complete."""
        dropped = {k for q in [*self.queues, self.central] for (k, _) in q}
        for w, q in enumerate(self.queues):
            self.pending_s[w] -= sum(self.predicted.pop(task, 0.0) for task in q)
            q.clear()
            self._state_cache[w] = None
        self.central.clear()
        running = {k for q in self.inflight for (k, _) in q}
        for k in dropped - running:
            self._close(k)

    # -- placing tasks ------------------------------------------------------------------------------
    def _states(self) -> list[WorkerState]:
        """The workers as the policy sees them; an entry is rebuilt only after that worker changed."""
        states = self._state_cache
        for i, state in enumerate(states):
            if state is None:
                states[i] = WorkerState(i, self.workers[i].kind, self.kind_keys[i], self.nodes[i],
                                        not self.inflight[i] and not self.queues[i], self.expected_free[i])
        return cast(list[WorkerState], states)  # every entry filled above

    def _ready_task(self, k: int, part: int) -> ReadyTask:
        by_node: dict[str, int] = {}
        for source, per_sample in self.parts.input_bytes_per_sample[part].items():
            node = HOST if source < 0 else self.where.get((k, source), HOST)
            by_node[node] = by_node.get(node, 0) + per_sample * self.records[k].size
        return ReadyTask(k, part, self.records[k].size, by_node)

    def _dispatch(self, k: int, part: int) -> None:
        now = self.loop.now()
        if self.pass_inputs or self.weighs_inputs:
            task = self._ready_task(k, part)
            if self.pass_inputs:
                self.ready[(k, part)] = task
        else:
            task = ReadyTask(k, part, self.records[k].size, {})
        choice = self.policy.choose(task, self._states(), now, self.perf)
        if choice is None:
            self._enqueue(self.central, k, part)
            return
        self._assign(choice, k, part, now)
        self._start_next(choice)

    def _assign(self, w: int, k: int, part: int, now: float) -> None:
        predicted = self.perf.predict(part, self.kind_keys[w], self.records[k].size) or 0.0
        self.predicted[(k, part)] = predicted
        self.pending_s[w] += predicted
        self.expected_free[w] = max(self.expected_free[w], now) + predicted
        self._enqueue(self.queues[w], k, part)
        self._state_cache[w] = None

    def _enqueue(self, queue, k: int, part: int) -> None:
        """A FIFO queue takes a started batch's next part first (depth first): with every batch released at once,
        first parts queued ahead of later ones kept thousands of batches' tensors alive and a 3-part tiny_cnn ran
        at 0.7 of the whole model's rate (1.4 x once started batches went on first). An ordered queue orders it."""
        if self.parts.deps[part] and isinstance(queue, deque):
            queue.appendleft((k, part))
        else:
            queue.append((k, part))

    def _start_next(self, w: int) -> None:
        inflight = self.inflight[w]
        while len(inflight) < self.depth[w] and (self.queues[w] or self.central) and self._hand_over(w):
            pass

    def _hand_over(self, w: int) -> bool:
        if not self.queues[w] and self.policy.central and self.central:
            k, part = self.central.popleft()
            self._assign(w, k, part, self.loop.now())
        if not self.queues[w]:
            return False
        k, part = self.queues[w].popleft()
        self.inflight[w].append((k, part))
        self._state_cache[w] = None
        if self.pass_inputs:
            self.executor.start(w, k, part, self.records[k].size, self._complete,
                                self.ready.pop((k, part)).input_bytes_by_node)
        else:
            self.executor.start(w, k, part, self.records[k].size, self._complete)
        return True

    def _complete(self, w: int, k: int, part: int, start_s: float, end_s: float, error: str = "",
                  transfer: tuple[float, float] | None = None) -> None:
        """Task (k, part) ended on worker w (called on the loop's thread)."""
        self.inflight[w].remove((k, part))
        self.pending_s[w] = max(0.0, self.pending_s[w] - self.predicted.pop((k, part), 0.0))
        self.expected_free[w] = self.loop.now() + self.pending_s[w]  # StarPU: re-based at each completion
        self._state_cache[w] = None
        record = self.records[k]
        record.tasks.append(TaskRecord(part, w, start_s, end_s, transfer))
        if error:
            record.error = record.error or error
        elif self.learns:
            self.perf.record(part, self.kind_keys[w], record.size, end_s - start_s)
        if k in self.closed:  # its batch failed or was abandoned while this task ran
            self._start_next(w)
            return
        self.where[(k, part)] = self.nodes[w]
        done = self.done_parts[k]
        done.add(part)
        remaining = self.remaining[k]
        remaining.discard(part)
        if not remaining or error:
            self._finish_batch(k, end_s)
        elif self.stop_reason:
            self._close(k)  # congested: later parts are not started
        else:
            for nxt in self.successors[part]:
                if nxt in remaining and self.dep_sets[nxt] <= done:
                    self._dispatch(k, nxt)
        self._start_next(w)
        if self.central:  # only a central policy leaves tasks there
            for other in range(len(self.workers)):
                self._start_next(other)
        if self._over():  # a worker delivered the last completion: the loop's thread may be waiting for it
            self.loop.wake()

    def _finish_batch(self, k: int, end_s: float) -> None:
        """The batch's last task ended (on the loop's thread, or in real time on the worker that ran it, under the
        loop's lock): its record closed, and the judge told."""
        if k not in self.closed:
            self.records[k].end_s = end_s
            self._close(k)
            why = self.watch(self.records[k]) if self.watch else ""
            if why and not self.stop_reason:
                self.stop_reason = why
                self._drop_queued()

    def _close(self, k: int) -> None:
        if k not in self.closed:
            self.closed.add(k)
            self.executor.release_batch(k)
            self.remaining.pop(k, None)
            self.done_parts.pop(k, None)
            for part in self.model_parts[self.records[k].model]:
                self.where.pop((k, part), None)

    def _urgency(self, task: tuple[int, int]) -> tuple[float, float]:
        record = self.records[task[0]]
        if self.launch_rank is not None:  # --policy opara: the earliest batch, then the launch order
            return task[0], self.launch_rank[task[1]]
        return -record.priority, record.deadline_s
