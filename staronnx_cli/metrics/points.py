"""Batch records -> one point's summary, and the congestion detector (pure; times in seconds from t0).

A point (N, rho) is W warm-up batches then K measured ones. L_k = C_k - t_{kN} (completion minus the
batch's first arrival) is the latency of the batch's first query, the largest of the batch. Queries of
batch k arrived at t_{kN} + j tau, so query j's latency is L_k - j tau.
"""

from __future__ import annotations

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


def query_latencies(end_s: np.ndarray, arrivals_s: np.ndarray, sizes) -> np.ndarray:
    """Latency of every query of the given batches (arrivals_s: all arrivals of those batches, in order;
    sizes: queries per batch, one number or one per batch)."""
    ends = np.repeat(end_s, sizes)
    return ends - arrivals_s[: len(ends)]


def congestion(latency_s: np.ndarray, backlog: int, max_backlog: int, elapsed_s: float, time_cap_s: float,
               min_batches: int = 10) -> str:
    """Why a point is congested ('' if it is not): backlog bound, time cap, or latency growing with k.

    The trend test fits L_k = a + b k on the batches so far: a queue that cannot keep up grows by
    (S/w - N tau) per batch, so a slope that would add more than the mean latency over the run is growth,
    not noise.
    """
    if backlog > max_backlog:
        return f"backlog of {backlog} released batches not finished (> {max_backlog})"
    if elapsed_s > time_cap_s:
        return f"point ran {elapsed_s:.1f} s (> time cap {time_cap_s:.1f} s)"
    k = len(latency_s)
    if k >= min_batches:
        slope, intercept = np.polyfit(np.arange(k), latency_s, 1)
        growth = slope * k
        half = k // 2
        rising = np.median(latency_s[half:]) > 1.5 * np.median(latency_s[:half])
        if growth > max(np.mean(latency_s), 1e-6) and rising:
            return f"latency grows by {1000 * slope:.3f} ms per batch"
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
    achieved = queries.size / duration_s if duration_s > 0 else float("nan")
    return PointSummary(
        batches=int(latency.size), mean_max_latency_ms=float(1000 * latency.mean()),
        std_max_latency_ms=float(1000 * latency.std(ddof=1)) if latency.size > 1 else 0.0,
        p50_latency_ms=float(1000 * np.percentile(queries, 50)),
        p99_latency_ms=float(1000 * np.percentile(queries, 99)),
        max_latency_ms=float(1000 * latency.max()), achieved_qps=float(achieved),
        congested=bool(congested_reason), reason=congested_reason)


def utilisation(busy: list[list[tuple[float, float]]], window: tuple[float, float]) -> list[float]:
    """Per worker, the fraction of `window` it spent running tasks (intervals clipped to the window)."""
    lo, hi = window
    if hi <= lo:
        return [float("nan")] * len(busy)
    return [sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in intervals) / (hi - lo) for intervals in busy]


def ideal_latency_s(batch_size: int, rate_qps: float, service_s: float) -> float:
    """No system does better than the formation time (N-1) tau plus the isolated service time S(N)."""
    return (batch_size - 1) / rate_qps + service_s


def ideal_rho_max(batch_size: int, service_s_per_worker: list[float]) -> float:
    """Saturation of w workers, each finishing a batch of N every S_w(N): N * sum(1 / S_w)."""
    return batch_size * sum(1.0 / s for s in service_s_per_worker if s > 0)
