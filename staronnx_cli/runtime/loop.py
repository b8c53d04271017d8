"""One event loop, two clocks (the SimPy pattern): virtual time jumps to the next event; real time waits.

The scheduler never reads a clock itself: it asks the loop for `now()` and `wait_next(until)`. In the
virtual loop, task completions are heap events scheduled by the simulated executor. In the real loop a worker
runs its own completion under the loop's lock (`deliver`), and the loop's thread waits for a release without the
GIL: asleep, then polling the last 50 us in C (hotwait; a Python spin held the GIL, and the workers waited up to
the 5 ms switch interval to get it back), or, without the native module, in a timed wait with its thread's timer
slack at 1 ns.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable

from . import hotwait
from .realtime import IssuerPriority, precise_timers


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

    def start_clock(self, issuer: bool = True) -> None:
        """A point's clock starts once everything it needs is built: on the virtual clock, it is at 0 already."""

    def stop_clock(self) -> None:
        """The point is over (its runner's last word): nothing to undo on the virtual clock."""

    def call(self, callback: Callable, args: tuple) -> None:
        """Run an event's callback: on the virtual clock, just that (one thread)."""
        callback(*args)

    def deliver(self, callback: Callable, *args) -> None:
        """From another thread: not used by the virtual loop (its executor schedules completions)."""
        raise RuntimeError("the virtual loop has no other threads")

    def wake(self) -> None:
        """Whoever waits in wait_next should look again (the point may be over): nothing waits on the virtual clock."""

    def ring(self, bell) -> None:
        """A worker was handed a task (real threads only): ring its bell."""
        bell.ring()


class RealLoop(VirtualLoop):
    """Wall-clock time from perf_counter, relative to t0. The loop's thread releases batches at their due times;
    a worker thread delivers its own completions (StarPU's workers pop their next task themselves): the callback
    runs on the worker, under the loop's lock, so every callback still runs one at a time, as on one thread, and a
    worker with more work takes its next task without waking anyone."""

    def __init__(self, lead_s: float = 0.05):
        super().__init__()
        self.lead_s = lead_s
        self._t0 = time.perf_counter() + lead_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()  # held by whoever runs a callback: the loop's thread or a worker's
        self._bell = hotwait.Bell()  # rung with every wake: the loop's thread may be polling for its next release
        self._thread = threading.get_ident()  # the loop's thread: the one that made it and waits in it
        self.held_rings: dict | None = None  # bells (keys) to ring when the loop's thread next waits (during a point)
        self.polls = hotwait.NATIVE  # its executor says whether the workers leave this thread a core to poll on
        self.priority = IssuerPriority()  # this thread above the workers while a point runs (where permitted)
        self._posted: dict[int, int] = {}  # worker thread -> completions it posted to the loop's thread
        self._run_posted: dict[int, int] = {}  # ... and those the loop's thread has run
        precise_timers()  # the thread that runs the loop wakes at its due times, not up to 50 us after

    def start_clock(self, issuer: bool = True) -> None:
        """Time 0 is `lead_s` from now: the first release is never late for what was built before it. From now on
        the bells of workers handed tasks on the loop's thread are rung when it next waits (`held_rings`), and that
        thread, when it only issues (`issuer`), runs above the workers until stop_clock."""
        self._t0 = time.perf_counter() + self.lead_s
        self.held_rings = {}
        if issuer:
            self.priority.raise_()

    def stop_clock(self) -> None:
        self.priority.restore()
        self.ring_held()
        self.held_rings = None

    def ring(self, bell: hotwait.Bell) -> None:
        """A worker was handed a task: ring its bell now, or, on the loop's thread during a point, once the loop
        waits and the GIL is free (a worker woken earlier would only wait for the GIL, asleep in the kernel)."""
        if self.held_rings is not None and threading.get_ident() == self._thread:
            self.held_rings[bell] = None  # once per bell, however many tasks it was handed
        else:
            bell.ring()

    def ring_held(self) -> None:
        for bell in self._take_held():
            bell.ring()

    def _take_held(self) -> list[hotwait.Bell]:
        """The bells held so far, the list emptied (nothing outside a point)."""
        if not self.held_rings:
            return []
        rings, self.held_rings = list(self.held_rings), {}
        return rings

    def call(self, callback: Callable, args: tuple) -> None:
        with self.lock:
            callback(*args)

    def deliver(self, callback: Callable, *args) -> None:
        """From a worker's thread: its completion, run now on that thread under the loop's lock; or, when the lock
        is held (the loop's thread releasing, another worker completing), posted to the loop's thread, which runs
        it before its next release. A worker never sleeps on the lock (a sleep is a 20-40 us wake-up), and its
        queue already holds its next tasks. Its completions keep their order: once one is posted, the next ones
        are too until the loop's thread has run them."""
        me = threading.get_ident()
        posted = self._posted.get(me, 0)
        if posted == self._run_posted.get(me, 0) and self.lock.acquire(blocking=False):
            try:
                callback(*args)
            except BaseException as exc:  # noqa: BLE001 - raised on the loop's thread, which ends the point
                self._inbox.put((_reraise, (exc,)))
                self._bell.ring()
            finally:
                self.lock.release()
            return
        self._posted[me] = posted + 1  # written by this worker only; _run_posted by the loop's thread only
        self._inbox.put((self._run_post, (me, callback, args)))
        self._bell.ring()

    def _run_post(self, me: int, callback: Callable, args: tuple) -> None:
        self._run_posted[me] = self._run_posted.get(me, 0) + 1
        callback(*args)

    def wake(self) -> None:
        self._inbox.put((_nothing, ()))
        self._bell.ring()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def wait_next(self) -> tuple[Callable, tuple] | None:
        due = self.next_due()
        inbox, bell = self._inbox, self._bell
        while True:
            try:
                event = inbox.get_nowait()
                self.ring_held()  # workers handed tasks hear of them now, not when this thread next waits
                return event
            except queue.Empty:
                pass
            remaining = due - (time.perf_counter() - self._t0)
            if remaining <= 0:
                self.ring_held()
                return self.pop_due() if self._heap else None
            if self.polls and remaining < 1.0:  # sleep, then poll the last 50 us, without the GIL
                seen = bell.value()
                if inbox.empty():  # at most 0.1 s in C: Ctrl-C is handled between the waits
                    bell.wait_until(seen, self._t0 + min(due, self.now() + 0.1), rings=self._take_held())
                continue
            self.ring_held()
            try:  # blocked without the GIL: the workers run their Python meanwhile
                return inbox.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue

    def pop_due(self) -> tuple[Callable, tuple]:
        _, _, callback, args = heapq.heappop(self._heap)
        return callback, args


def _reraise(exc: BaseException) -> None:
    """A worker's completion raised: the loop's thread raises it, so the point ends as it would have on one thread."""
    raise exc


def _nothing() -> None:
    """The event that only wakes the loop's thread (its caller then checks whether the point is over)."""
