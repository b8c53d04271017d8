"""Batch records -> one point's summary, and the congestion detector (pure; times in seconds from t0).

A point (N, rho) is W warm-up batches then K measured ones. L_k = C_k - t_{kN} (completion minus the
batch's first arrival) is the latency of the batch's first query, the largest of the batch. Queries of
batch k arrived at t_{kN} + j tau, so query j's latency is L_k - j tau.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointSummary:
    batches: int  # measured batches that completed
    mean_max_latency_ms: float
    std_max_latency_ms: float
    p50_latency_ms: float
    p99_latency_ms: float
    max_latency_ms: float
    achieved_qps: float
    congested: bool
    reason: str
    p90_latency_ms: float = math.nan  # perf_analyzer's other percentiles (of every query, as p50 and p99)
    p95_latency_ms: float = math.nan


def query_latencies(end_s: np.ndarray, arrivals_s: np.ndarray, sizes) -> np.ndarray:
    """Latency of every query of the given batches (arrivals_s: all arrivals of those batches, in order;
    sizes: queries per batch, one number or one per batch)."""
    ends = np.repeat(end_s, sizes)
    return ends - arrivals_s[: len(ends)]


UNSERVED_FRACTION = 0.03  # latency rising by 3 % of elapsed time = 3 % of the offered load not served
SLOPE_T = 3.0  # the rise must stand 3 standard errors above noise
EXTEND_ON_FALL = 0.005  # a latency falling this fast (0.5 % of elapsed time), significantly, is a backlog draining


def congestion(latency_s: np.ndarray, release_s: np.ndarray, min_batches: int = 10,
               t_threshold: float = SLOPE_T, unserved: float = UNSERVED_FRACTION, later_half: bool = True) -> str:
    """Why a point is congested ('' if it is not), from its batches so far.

    Regress L_k on the batch's release time t_k. A system that keeps up has a stationary L_k (slope 0);
    one that serves a fraction c of the offered load has dL/dt = 1 - c (its queue grows by that much per
    second of arrivals), whatever the arrival process. Congested: the slope exceeds 3 % and is
    `t_threshold` standard errors above zero, over the later half of the batches (at least `min_batches`):
    dmda lets a queue build until another worker's expected end is sooner, then it stops growing
    (`later_half=False`: over every batch given, where no queue can level off).
    The backlog bound and time cap are enforced by the scheduler itself.
    """
    k = len(latency_s)
    if k < max(min_batches, 3):
        return ""
    recent = max(min_batches, k // 2) if later_half else k  # a queue that grew, then levelled off, keeps up
    slope, stderr = latency_slope(latency_s[-recent:], release_s[-recent:])
    if slope > unserved and slope > t_threshold * stderr:
        return f"latency grows {1000 * slope:.0f} ms per s: about {min(slope, 1):.0%} of the load is not served"
    return ""


def latency_slope(latency_s, release_s) -> tuple[float, float]:
    """The least-squares slope of latency against release time (s per s) and its standard error; (0, inf) where
    the batches are too few or released at one instant."""
    latency = np.asarray(latency_s, dtype=np.float64)
    t = np.asarray(release_s, dtype=np.float64)
    if len(latency) < 3:  # (an empty window's mean warned on stderr: every batch of a point had failed)
        return 0.0, float("inf")
    dt = t - t.mean()
    spread = float(dt @ dt)
    if spread <= 0:
        return 0.0, float("inf")
    dl = latency - latency.mean()
    slope = float(dt @ dl) / spread  # closed form (np.polyfit is ten times slower)
    residual = dl - slope * dt
    return slope, float(np.sqrt(float(residual @ residual) / (len(latency) - 2) / spread))


END_BATCHES = 4  # fixed arrivals: the latency at each end of a window is the mean of this many batches


def ends_served(latency_s: np.ndarray, release_s: np.ndarray) -> float:
    """The share of a fixed stream these batches served: a queue that grows by the unserved share of the load
    raises the latency by that share of the time elapsed, measured between the window's two ends, each the mean
    of END_BATCHES batches (an even count: two workers' alternation cancels; a queue that drained at the end lost
    no load)."""
    m = END_BATCHES if len(latency_s) >= 2 * END_BATCHES else 1
    elapsed = float(release_s[-m:].mean() - release_s[:m].mean()) if len(release_s) else 0.0
    return 1.0 - float(latency_s[-m:].mean() - latency_s[:m].mean()) / elapsed if elapsed > 0 else 1.0


def draining(latency_s, release_s, rate: float = EXTEND_ON_FALL, t_threshold: float = SLOPE_T) -> str:
    """A latency falling over the batches given, significantly: a backlog left by a disturbance (another process,
    a slow first run) still draining, so that their mean overstates the steady latency; '' otherwise."""
    slope, stderr = latency_slope(latency_s, release_s)
    if slope < -rate and -slope > t_threshold * stderr:
        return f"latency falls {1000 * -slope:.0f} ms per s"
    return ""


def summarize(first_arrival_s: np.ndarray, end_s: np.ndarray, query_arrivals_s: np.ndarray, sizes,
              duration_s: float, congested_reason: str = "") -> PointSummary:
    """Summary of the measured batches (arrays aligned per batch; query_arrivals_s per query; sizes: queries
    per batch, one number or one per batch)."""
    latency = end_s - first_arrival_s
    if latency.size == 0:
        nan = float("nan")
        return PointSummary(0, nan, nan, nan, nan, nan, 0.0, True, congested_reason or "no batch completed")
    queries = query_latencies(end_s, query_arrivals_s, sizes)
    achieved = queries_per_s(end_s, sizes)
    if not math.isfinite(achieved):  # one batch, or all at once: over the window
        achieved = queries.size / duration_s if duration_s > 0 else float("nan")
    return PointSummary(
        batches=int(latency.size), mean_max_latency_ms=float(1000 * latency.mean()),
        std_max_latency_ms=float(1000 * latency.std(ddof=1)) if latency.size > 1 else 0.0,
        p50_latency_ms=float(1000 * np.percentile(queries, 50)),
        p99_latency_ms=float(1000 * np.percentile(queries, 99)),
        p90_latency_ms=float(1000 * np.percentile(queries, 90)),
        p95_latency_ms=float(1000 * np.percentile(queries, 95)),
        max_latency_ms=float(1000 * latency.max()), achieved_qps=float(achieved),
        congested=bool(congested_reason), reason=congested_reason)


def queries_per_s(times_s: np.ndarray, sizes) -> float:
    """Queries per second of batches at these times (their ends: served; their releases: offered): all but the
    first, over the time from the first to the last. A system that keeps up serves the offered rate (counting from
    the first arrival instead, the last batch's latency lengthened the window: googlenet at 32 queries a batch,
    keeping up at 69.9 q/s, read 63.5); one that does not, its own rate. NaN with fewer than two times."""
    ends = np.asarray(times_s, dtype=np.float64)
    order = np.argsort(ends, kind="stable")
    counts = np.broadcast_to(np.asarray(sizes), ends.shape)[order]
    span = float(ends[order[-1]] - ends[order[0]]) if ends.size > 1 else 0.0
    return float(counts[1:].sum()) / span if span > 0 else float("nan")


def latency_parts(first_arrival_s: np.ndarray, scheduled_release_s: np.ndarray, first_start_s: np.ndarray,
                  end_s: np.ndarray) -> tuple[float, float, float]:
    """Where the batches' latency went, as means (s) that add up to the mean max-latency: filling the batch (its
    first query's arrival to its release as scheduled), waiting (to its first task's start: a worker busy, the
    issuer late, the dispatch), running (to its end: its tasks, and between a split's parts their hand-overs and any
    wait for a worker). A task that starts before its batch's release (Triton's, from its first query's sending)
    runs from the release on: the three still add up, none below 0."""
    start = np.maximum(first_start_s, scheduled_release_s)
    return (float((scheduled_release_s - first_arrival_s).mean()), float((start - scheduled_release_s).mean()),
            float((end_s - start).mean()))


def utilisation(busy: list[list[tuple[float, float]]], window: tuple[float, float]) -> list[float]:
    """Per worker, the fraction of `window` it spent running tasks (intervals clipped to the window, overlapping
    ones counted once: a Triton group spans its queries' time in the server, and groups overlap)."""
    lo, hi = window
    if hi <= lo:
        return [float("nan")] * len(busy)
    return [_covered(intervals, lo, hi) / (hi - lo) for intervals in busy]


def _covered(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    total, reach = 0.0, lo
    for s, e in sorted(intervals):
        s, e = max(s, reach), min(e, hi)
        if e > s:
            total += e - s
            reach = e
    return total


def ideal_latency_s(batch_size: int, rate_qps: float, service_s) -> float:
    """No system does better than the formation time (N-1) tau plus the mean isolated service time.

    `service_s`: S(N) (identical workers, however many), or one S_w(N) per worker. With unequal workers, a
    rate beyond what the fastest worker serves (N / S_fast) sends some batches to slower ones: the least mean
    service time fills the fastest workers to capacity first (a fluid bound: no queueing). Beyond every
    worker's capacity: infinite.
    """
    if isinstance(service_s, (int, float, np.number)):
        return (batch_size - 1) / rate_qps + float(service_s)
    services = sorted(s for s in np.atleast_1d(np.asarray(service_s, dtype=np.float64)) if s > 0 and s == s)
    if not services:
        return float("nan")
    demand = rate_qps / batch_size  # batches per second
    left, busy = demand, 0.0
    for s in services:
        taken = min(left, 1.0 / s)
        busy += taken * s
        left -= taken
        if left <= demand * 1e-12:
            return (batch_size - 1) / rate_qps + busy / demand
    return float("inf")


def capacity_qps(batch_size: int, service_s_per_worker) -> float:
    """The capacity of w workers, each finishing a batch of N every S_w(N): N * sum(1 / S_w) queries/s, summed over
    the workers whose S_w(N) is known (an ideal rho_max; the measured one is analysis.envelope.rho_max)."""
    return batch_size * sum(1.0 / s for s in service_s_per_worker if s and s > 0 and math.isfinite(s))
