"""Waiting on the hot path without the GIL and without letting a core fall asleep (the native `_hotpath` module),
with a plain-Python fallback where it could not be compiled.

Measured on a 2-core VM: a thread blocked in the kernel wakes 20-40 us after it is signalled, and its next ONNX
Runtime run of a one-Add model took 22 us instead of 5 (cold core); a Python spin holds the GIL, so every other
thread then waits up to the 5 ms switch interval. A `Bell` is an int64 that whoever hands work over increments;
the waiting thread spins on it in C with the GIL released (StarPU's workers poll the same way), for a bounded time,
and only where the layout leaves a core to spare for the issuer (`spare_cores`); otherwise waits block.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import ModuleType

import numpy as np

_hotpath: ModuleType | None
try:
    from . import _hotpath
except ImportError:  # no C compiler when staronnx was installed: the waits block in Python instead
    _hotpath = None

NATIVE = _hotpath is not None
WORKER_SPIN_S = 0.005  # an idle worker polls this long for its next task before it blocks (with a core to spare)
MAX_NATIVE_RINGS = 64  # _hotpath.c's MAX_RINGS
ISSUER_SPIN_S = 0.00005  # the issuer sleeps until this long before a release is due, then polls (likewise)


def spare_cores(worker_cores: list[tuple[int, ...]], available: list[int]) -> int:
    """Cores left once every worker has one: those it is pinned to, or one somewhere for a worker pinned to none (a
    GPU worker's thread polls too). Polling pays only where the poller does not take a core someone else needs
    (two polling workers on a 2-core machine left the issuer no core: the cpu:2x1 runtime ran at 0.58 x cpu:1x1)."""
    taken = {c for cores in worker_cores for c in cores}
    floating = sum(1 for cores in worker_cores if not cores)
    return len(set(available) - taken) - floating


def status() -> str:
    """For `staronnx doctor`: how the hot path waits."""
    if NATIVE:
        return "native spin-waits (staronnx_cli.runtime._hotpath): workers poll for tasks, releases on time"
    return ("Python waits (the native module was not compiled: install a C compiler, then pip install -e . again); "
            "expect 20-40 us more per task hand-over")


class Bell:
    """A counter a thread waits on: `ring` after handing it work; `value` before the last look at the work queue,
    then `wait_change(value)`, so a ring between the look and the wait is never missed."""

    __slots__ = ("word",)

    def __init__(self):
        self.word = np.zeros(1, dtype=np.int64)

    def ring(self) -> None:
        self.word[0] += 1

    def value(self) -> int:
        return int(self.word[0])

    def wait_change(self, seen: int, spin_s: float = WORKER_SPIN_S) -> int:
        """Poll, without the GIL, until the bell rings or `spin_s` passes; the bell's value then (== seen: it did not
        ring). Without the native module it returns at once."""
        if _hotpath is None:
            return self.value()
        return _hotpath.wait_change(self.word, seen, int(spin_s * 1e9))

    def wait_until(self, seen: int, deadline_s: float, spin_s: float = ISSUER_SPIN_S,
                   rings: Sequence[Bell] = ()) -> int:
        """Until `deadline_s` (time.perf_counter's clock) or the bell rings: sleep, then poll the last `spin_s`,
        without the GIL; first, with the GIL already released, ring `rings` (workers handed tasks take the GIL
        without waiting for this thread to drop it: a wait for the GIL is a sleep in the kernel). Without the
        native module: ring, then sleep (the thread's timer slack is 1 ns, see realtime)."""
        if _hotpath is not None:
            for bell in rings[MAX_NATIVE_RINGS:]:  # the C side rings at most this many
                bell.ring()
            return _hotpath.wait_until(self.word, seen, int(deadline_s * 1e9), int(spin_s * 1e9),
                                       [bell.word for bell in rings[:MAX_NATIVE_RINGS]])
        for bell in rings:
            bell.ring()
        left = deadline_s - time.perf_counter()
        if left > 0:
            time.sleep(min(left, 0.1))
        return self.value()
