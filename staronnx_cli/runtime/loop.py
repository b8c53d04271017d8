"""One event loop, two clocks (the SimPy pattern): virtual time jumps to the next event; real time waits.

The scheduler never reads a clock itself: it asks the loop for `now()` and `wait_next(until)`. In the
virtual loop, task completions are heap events scheduled by the simulated executor. In the real loop they
arrive from worker threads through a queue, and waiting for a release is sleep, then spin on
perf_counter for the last stretch (plain sleep wakes 90-160 us late; a spin is precise to a microsecond).
"""

from __future__ import annotations

import heapq
import itertools
import queue
import time
from collections.abc import Callable

from .realtime import SPIN_S


class VirtualLoop:
    def __init__(self):
        self._now = 0.0
        self._heap: list = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def schedule(self, at: float, callback: Callable, *args) -> None:
        """At time `at`, call callback(*args) (arguments, not closures: one less object per event)."""
        heapq.heappush(self._heap, (at, next(self._order), callback, args))

    def next_due(self) -> float:
        return self._heap[0][0] if self._heap else float("inf")

    def pop_due(self) -> tuple[Callable, tuple]:
        at, _, callback, args = heapq.heappop(self._heap)
        if at > self._now:
            self._now = at
        return callback, args

    def wait_next(self) -> tuple[Callable, tuple] | None:
        """The next thing to do, (callback, args) of a due event, or None when nothing is left."""
        return self.pop_due() if self._heap else None

    def post(self, callback: Callable, *args) -> None:
        """From another thread: not used by the virtual loop (its executor schedules completions)."""
        raise RuntimeError("the virtual loop has no other threads")


class RealLoop(VirtualLoop):
    """Wall-clock time from perf_counter, relative to t0; completions posted by worker threads."""

    def __init__(self, lead_s: float = 0.05):
        super().__init__()
        self._t0 = time.perf_counter() + lead_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def post(self, callback: Callable, *args) -> None:
        self._inbox.put((callback, args))

    def wait_next(self) -> tuple[Callable, tuple] | None:
        due = self.next_due()
        while True:
            try:
                return self._inbox.get_nowait()
            except queue.Empty:
                pass
            remaining = due - self.now()
            if remaining <= 0:
                return self.pop_due() if self._heap else None
            if remaining > SPIN_S:
                try:
                    return self._inbox.get(timeout=min(remaining - SPIN_S, 1.0))
                except queue.Empty:
                    continue
            # spin: poll the inbox until the event is due

    def pop_due(self) -> tuple[Callable, tuple]:
        _, _, callback, args = heapq.heappop(self._heap)
        return callback, args
