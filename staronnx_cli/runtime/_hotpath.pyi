"""Types of the native module _hotpath.c (GIL-free waits of the runtime's hot path), for the type checker."""

from collections.abc import Sequence

import numpy as np

def wait_change(bell: np.ndarray, seen: int, spin_ns: int) -> int: ...
def wait_until(bell: np.ndarray, seen: int, deadline_ns: int, spin_ns: int,
               rings: Sequence[np.ndarray] = ...) -> int: ...
def monotonic_ns() -> int: ...
