"""Arrival schedules as plain arrays computed before the run (MLPerf LoadGen's rule), and batch releases.

All times are seconds from the point's t0. Paper semantics (DESIGN.md section 2): query i arrives at
i * tau (tau = 1 / rate); batch k holds queries kN .. kN+N-1 and is released when its last query has
arrived, at (kN + N - 1) * tau; its latency is measured from its first query's arrival, k N tau.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError


def fixed_rate(rate_qps: float, queries: int) -> np.ndarray:
    if rate_qps <= 0:
        raise UserError(f"--rate {rate_qps}: a query rate must be positive (queries per second)")
    return np.arange(queries, dtype=np.float64) / rate_qps


def poisson(rate_qps: float, queries: int, seed: int) -> np.ndarray:
    if rate_qps <= 0:
        raise UserError(f"--rate {rate_qps}: a query rate must be positive (queries per second)")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_qps, queries)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def from_trace(path: Path, queries: int) -> np.ndarray:
    """Arrival times (seconds, one per line, non-decreasing), shifted to start at 0, repeated if short."""
    try:
        times = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read arrival trace '{path}' ({exc}): one time in seconds per line") from None
    if times.size < 2 or np.any(np.diff(times) < 0):
        raise UserError(f"arrival trace '{path}' needs at least two non-decreasing times, one per line")
    times = times - times[0]
    span = times[-1] + (times[-1] / (times.size - 1))
    reps = -(-queries // times.size)
    return (np.concatenate([times + r * span for r in range(reps)]))[:queries]


@dataclass(frozen=True)
class BatchSchedule:
    """When each batch is released and when its first query arrived (plain arrays)."""

    batch_size: int
    first_arrival_s: np.ndarray  # per batch: arrival of its first query (latency is measured from here)
    release_s: np.ndarray  # per batch: arrival of its last query (when it can start)

    @property
    def batches(self) -> int:
        return len(self.release_s)


def batch_schedule(arrivals: np.ndarray, batch_size: int) -> BatchSchedule:
    if batch_size < 1:
        raise UserError(f"--batch {batch_size}: a batch size must be at least 1")
    count = len(arrivals) // batch_size
    grouped = arrivals[: count * batch_size].reshape(count, batch_size)
    return BatchSchedule(batch_size, grouped[:, 0].copy(), grouped[:, -1].copy())


def fixed_rate_batches(rate_qps: float, batch_size: int, batches: int) -> BatchSchedule:
    return batch_schedule(fixed_rate(rate_qps, batch_size * batches), batch_size)
