"""`--rate auto`: a grid fitted to the machine, then each batch size's saturation found by bisection.

Before any point, each N's ideal saturation (its capacity, N times the sum over workers of 1 / S_w(N)) is
measured. The grid is the union over N of fixed fractions of each capacity, so every N is measured at every rate
(the best N at a rate needs them all) and every N gets points up to and past its own saturation. Then, per N, the
rate between its highest uncongested and its lowest congested point is measured, and again, until rho_max(N) is
known within PRECISION. Pure functions: the runner measures, these decide what to measure next.
"""

from __future__ import annotations

import math

from ..analysis.envelope import PRECISION
from ..metrics.points import capacity_qps

FRACTIONS = (0.25, 0.5, 0.7, 0.85, 1.0, 1.1)  # of each N capacity: the last one is usually congested
MERGE = 0.1  # grid rates closer than 10 % are one
MAX_PROBES = 8  # per batch size: bisection from 1.05 x capacity halves 3 % well before this
FLOOR = 0.01  # of the capacity: below it a batch size that congests at every rate is reported as such


def grid_capacity(n: int, services_s: list[float]) -> float | None:
    """N's capacity from the workers whose S(N) is known (a lower bound where some are not: the grid reaches it
    and bisection goes on from there); None when none is known."""
    return capacity_qps(n, services_s) or None


def nice(rate: float, digits: int = 3) -> float:
    """A rate a reader can read: 3 significant digits (412.7 -> 413)."""
    if rate <= 0:
        return rate
    return round(rate, digits - 1 - int(math.floor(math.log10(rate))))


def union_grid(capacities: dict[int, float | None]) -> list[float]:
    """Every N's fractions of its capacity, merged into one sorted grid; a rate within MERGE of the one kept
    below it is dropped (batch sizes of similar capacity would otherwise triple every point)."""
    grid: list[float] = []
    for rate in sorted({nice(f * c) for c in capacities.values() if c for f in FRACTIONS}):
        if not grid or rate > grid[-1] * (1 + MERGE):
            grid.append(rate)
    return grid


def next_probe(measured: list[tuple[float, bool]], capacity: float | None) -> float | None:
    """The next rate to measure for one N, given its (rate, congested) points; None when rho_max(N) is known
    within PRECISION (or cannot be: no capacity, or congested down to FLOOR of it)."""
    fine = sorted(r for r, congested in measured if not congested)
    if not fine:
        lowest = min((r for r, _ in measured), default=None)
        if lowest is None or capacity is None or lowest <= FLOOR * capacity:
            return None
        return nice(lowest / 2)
    lo = fine[-1]
    above = [r for r, congested in measured if congested and r > lo]
    if not above:  # nothing congested above: go past the highest uncongested rate, up to twice the capacity
        if capacity is None or lo >= 2 * capacity:
            return None
        return nice(max(lo * 1.25, lo + 1e-9), 4)
    hi = min(above)
    if hi <= lo * (1 + PRECISION):
        return None
    mid = nice((lo + hi) / 2, 4)
    return mid if lo < mid < hi else None
