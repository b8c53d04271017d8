"""Arrival schedules as plain arrays computed before the run (MLPerf LoadGen's rule), and batch releases.

All times are seconds from the point's t0. Paper semantics (DESIGN.md section 2): query i arrives at
i * tau (tau = 1 / rate); batch k holds queries kN .. kN+N-1 and is released when its last query has
arrived, at (kN + N - 1) * tau; its latency is measured from its first query's arrival, k N tau.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..inputfile import checked_input


def fixed_rate(rate_qps: float, queries: int) -> np.ndarray:
    if rate_qps <= 0:
        raise UserError(f"--rate {rate_qps}: a query rate must be positive (queries per second)")
    return np.arange(queries, dtype=np.float64) / rate_qps


def poisson(rate_qps: float, queries: int, seed: int, blocks: Sequence[int] = ()) -> np.ndarray:
    """Poisson arrivals given their count: each block of queries (`blocks`, then the rest) arrives uniformly over
    its own span of count / rate seconds, a Poisson process conditioned on its count in each span. So a short
    window offers its nominal rate with Poisson's bursts: 40 free Poisson arrivals came at 80 % of the rate asked
    for (one seed, at every rate), and points at 136 % of the capacity were measured as keeping up."""
    if rate_qps <= 0:
        raise UserError(f"--rate {rate_qps}: a query rate must be positive (queries per second)")
    sizes = [n for n in blocks if n > 0]
    sizes.append(max(0, queries - sum(sizes)))
    rng, start, times = np.random.default_rng(seed), 0.0, [np.zeros(1)]  # the first query at time 0, as `fixed`
    for i, n in enumerate(sizes):
        times.append(start + np.sort(rng.uniform(0.0, n / rate_qps, n - (i == 0))))
        start += n / rate_qps
    return np.concatenate(times)[:queries]


def from_trace(path: Path, queries: int) -> np.ndarray:
    """A trace file's arrivals (seconds, one per line, non-decreasing) at unit mean rate, starting at 0 and
    repeated (one mean gap between repetitions) until there are `queries` of them."""
    path = checked_input(path, "arrival trace", "write one arrival time in seconds per line")
    try:
        with warnings.catch_warnings():  # an empty file: numpy warns, then our own message below says it better
            warnings.simplefilter("ignore", UserWarning)
            times = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read arrival trace '{path}' ({exc}): one time in seconds per line") from None
    if times.ndim != 1:  # several numbers on a line: which one is the time is not ours to guess
        raise UserError(f"arrival trace '{path}' has {times.shape[1]} numbers per line: one time in seconds per "
                        "line (keep only the arrival column, e.g. cut -d' ' -f1)")
    if not np.all(np.isfinite(times)):
        bad = int(np.argmax(~np.isfinite(times)))
        raise UserError(f"arrival trace '{path}' line {bad + 1}: {times[bad]} is not a finite time; one time in "
                        "seconds per line")
    with np.errstate(over="ignore", invalid="ignore"):  # -1e308 to 1e308: said below
        falls = bool(np.any(np.diff(times) < 0))
    if times.size < 2 or falls or times[-1] == times[0]:
        raise UserError(f"arrival trace '{path}' needs at least two non-decreasing times, one per line, "
                        "not all equal")
    with np.errstate(over="ignore", invalid="ignore"):
        span = times[-1] - times[0]
    if not math.isfinite(span):  # -1e308 to 1e308: the span itself is no number
        raise UserError(f"arrival trace '{path}' spans from {times[0]:g} to {times[-1]:g} s, more than a number "
                        "holds: give times in seconds from the trace's start")
    times = (times - times[0]) / (span / (times.size - 1))
    span = times[-1] + 1.0
    reps = -(-queries // times.size)
    return (np.concatenate([times + r * span for r in range(reps)]))[:queries]


ARRIVALS = "fixed, poisson, or trace:FILE"


def arrivals(kind: str, rate_qps: float, queries: int, seed: int = 0, blocks: Sequence[int] = ()) -> np.ndarray:
    """Arrival times of `queries` queries at mean rate `rate_qps`: `fixed` (the paper's), `poisson` (seeded; at
    exactly that rate over each of `blocks`, e.g. a point's warm-up and measured queries), or `trace:FILE` (a file's
    inter-arrival pattern, scaled to the mean rate)."""
    if not np.isfinite(rate_qps) or rate_qps <= 0:
        raise UserError(f"--rate {rate_qps}: a query rate must be a positive, finite number (queries per second)")
    if kind == "fixed":
        return fixed_rate(rate_qps, queries)
    if kind == "poisson":
        return poisson(rate_qps, queries, seed, blocks)
    if kind.startswith("trace:"):
        if not kind.partition(":")[2].strip():  # Path('') is '.', a directory: the file's name was left out
            raise UserError("--arrival trace: names no file: give trace:FILE, one arrival time in seconds per line")
        return from_trace(Path(kind.partition(":")[2]), queries) / rate_qps
    raise UserError(f"--arrival '{kind}' is unknown: choose {ARRIVALS}")


@dataclass(frozen=True)
class BatchSchedule:
    """When each batch is released, when its first query arrived, and how many queries it holds (plain arrays).

    `first_query[k]` indexes the arrival array, so query latencies can be computed from the same data.
    """

    batch_size: int  # the nominal N (the largest batch)
    first_arrival_s: np.ndarray  # per batch: arrival of its first query (latency is measured from here)
    release_s: np.ndarray  # per batch: when it can start (its last query arrived, or its first waited long enough)
    sizes: np.ndarray  # per batch: queries it holds (N, except under dynamic batching)
    first_query: np.ndarray  # per batch: index of its first query in the arrival array
    # a mix (mix/schedule.py): per batch, its model, deadline (first arrival + the model's target) and priority
    models: np.ndarray | None = None
    deadline_s: np.ndarray | None = None
    priority: np.ndarray | None = None
    arrival_s: np.ndarray | None = None  # every query's arrival, indexed by first_query (a mix's: None, per model)

    @property
    def batches(self) -> int:
        return len(self.release_s)


def batch_schedule(arrivals: np.ndarray, batch_size: int) -> BatchSchedule:
    """The paper's batching: batch k holds queries kN .. kN+N-1 and is released at the last one's arrival."""
    if batch_size < 1:
        raise UserError(f"--batch {batch_size}: a batch size must be at least 1")
    count = len(arrivals) // batch_size
    grouped = arrivals[: count * batch_size].reshape(count, batch_size)
    return BatchSchedule(batch_size, grouped[:, 0].copy(), grouped[:, -1].copy(), np.full(count, batch_size),
                         np.arange(count) * batch_size, arrival_s=arrivals)


def dynamic_batch_schedule(arrivals: np.ndarray, batch_size: int, max_queue_delay_s: float) -> BatchSchedule:
    """Triton-style timeout batching: a batch closes when it holds N queries or when its first query has
    waited `max_queue_delay_s`, whichever comes first (a smaller batch is released then)."""
    if batch_size < 1:
        raise UserError(f"--batch {batch_size}: a batch size must be at least 1")
    if max_queue_delay_s < 0:
        raise UserError(f"--max-queue-delay {max_queue_delay_s * 1e3:g} ms: a delay cannot be negative")
    firsts, releases, sizes, starts = [], [], [], []
    i = 0
    while i < len(arrivals):
        deadline = arrivals[i] + max_queue_delay_s
        j = min(i + batch_size, int(np.searchsorted(arrivals, deadline, side="right")), len(arrivals))
        j = max(j, i + 1)
        full = j - i == batch_size
        firsts.append(arrivals[i])
        releases.append(arrivals[j - 1] if full else max(deadline, arrivals[j - 1]))
        sizes.append(j - i)
        starts.append(i)
        i = j
    return BatchSchedule(batch_size, np.array(firsts), np.array(releases), np.array(sizes, dtype=np.int64),
                         np.array(starts, dtype=np.int64), arrival_s=arrivals)


def fixed_rate_batches(rate_qps: float, batch_size: int, batches: int) -> BatchSchedule:
    return batch_schedule(fixed_rate(rate_qps, batch_size * batches), batch_size)
