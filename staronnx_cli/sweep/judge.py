"""The verdict on a finished point, apart from writing it: its measured batches and the workers' busy time in,
why it is congested (or a caveat on its latency) out. Pure and exact: the same records give the same verdict,
which tests check on hand-made records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..metrics.points import (
    UNSERVED_FRACTION,
    congestion,
    draining,
    ends_served,
    ideal_latency_s,
    queries_per_s,
    utilisation,
)
from ..results.schema import DRAINING, NOT_SETTLED, SLOWED
from ..runtime.scheduler import BatchRecord

if TYPE_CHECKING:
    from .point import PointSpec

BUSY_TO_CONGEST = 0.9  # a rising latency with every worker less busy than this is noise, not a queue
SATURATED_BUSY, SATURATED_OVER_IDEAL = 0.97, 2.0  # no clear trend, but workers full and latency twice the ideal
FAR_BEYOND = 3.0  # a rate this many times the isolated capacity is congested whatever a short point shows
EXTEND_ON_RISE = 0.005  # a point within capacity whose latency still rises this fast (significantly) runs on
SHORT_BEYOND = 0.05  # beyond the capacity, this share of the offered load unserved is congestion without a trend
LATE_NOTE_S = 0.001  # a measured batch released this much later than scheduled: the machine stalled the issuer
SLOWED_BY = 1.5  # a point congested within the capacity whose tasks ran this many times S_w(N) (median): slowed


@dataclass(frozen=True)
class Evidence:
    """What a point's verdict is drawn from."""

    measured: list[BatchRecord]  # the measured batches that finished without error
    latency: np.ndarray  # each one's latency (s)
    busy: list[list[tuple[float, float]]]  # per worker, its tasks' (start, end): a mix counts every model's
    capacity: float | None  # N * sum(1 / S_w(N)), None when a worker's S(N) is unknown
    fastest: float | None  # the fastest worker's S(N)
    ideal_of: object  # S(N) (one number), or S_w(N) per worker, for the ideal latency
    first: int  # the first measured batch (after the warm-up and any extension)
    failed: bool  # some batch failed


@dataclass(frozen=True)
class Verdict:
    reason: str = ""  # why the point is congested ('' when it is not)
    note: str = ""  # a caveat on an uncongested point's latency (a disturbance, a queue not settled)


def judge_point(p: PointSpec, stop: str, ev: Evidence, may_settle: bool = True) -> Verdict:
    """A stop during the run is the reason; else the trend of the measured latencies against the workers' busy
    time and capacity. `may_settle`: a latency rising below the capacity is a queue still filling (judged after
    the extensions); not in a mix, where the capacity is the model's alone and the workers are shared."""
    reason, note = (stop, "") if stop else _trend(p, ev, may_settle)
    if not reason and ev.measured and ev.capacity and p.rate_qps > FAR_BEYOND * ev.capacity:
        reason, note = (f"{p.rate_qps / ev.capacity:.0f} x the workers' capacity of {ev.capacity:.0f} q/s (too few "
                        "batches for the queue to show)"), ""  # no system serves this, whatever a short point shows
    if not reason and not note and ev.measured and (fall := draining(ev.latency, [r.scheduled_release_s for r in
                                                                          ev.measured])):
        note = (f"{fall} over its {len(ev.measured)} measured batches ({DRAINING}): its latency is an upper "
                "bound")
    late = max((r.actual_release_s - r.scheduled_release_s for r in ev.measured), default=0.0)
    if not reason and not note and late > LATE_NOTE_S:  # the system ran what it was given: not its congestion
        note = (f"released up to {1000 * late:.1f} ms late (this machine held the issuer up): the latencies include "
                "that wait")
    if reason and may_settle and ev.capacity and p.rate_qps <= ev.capacity and (slow := slowdown(ev)) >= SLOWED_BY:
        reason += f"; its tasks ran {slow:.2f} x the S(N) measured alone ({SLOWED})"
    if ev.failed and not ev.measured:
        reason = reason or "every batch failed"
    return Verdict(reason, note)


def slowdown(ev: Evidence) -> float:
    """How much slower than measured alone the point's tasks ran: the median over its measured batches of the sum of
    their tasks' times, each over its worker's S_w(N) (a part's share of S_w(N) is alike on every worker). A point
    congested within its capacity with tasks SLOWED_BY times as slow was congested by what slowed them (another
    process, workers sharing memory or caches), not by the rate; 0.0 when the S_w(N) are not all known, or where a
    task spans more than its run (Triton's, from its first query's sending: its batch's filling and queue)."""
    services: list = ev.ideal_of if isinstance(ev.ideal_of, list) else [ev.ideal_of] * len(ev.busy)
    if not ev.measured or ev.capacity is None or len(services) != len(ev.busy):
        return 0.0
    if any(t.start_s < r.actual_release_s for r in ev.measured for t in r.tasks):
        return 0.0
    shares = [sum((t.end_s - t.start_s) / services[t.worker] for t in r.tasks) for r in ev.measured if r.tasks]
    return float(np.median(shares)) if shares else 0.0


def _busy_window(p: PointSpec, later: list) -> tuple[float, float]:
    """Where the workers' busy share is taken: from the later batches' first arrival to their last end, and at least
    the time their queries were offered over (len x N / rate): over one batch's own span a worker is busy all of it,
    and `--batches 2` called an idle worker saturated."""
    if not later:
        return 0.0, 0.0
    start = later[0].first_arrival_s
    return start, max(max(r.end_s for r in later), start + len(later) * p.batch_size / p.rate_qps)


def _trend(p: PointSpec, ev: Evidence, may_settle: bool) -> tuple[str, str]:
    """(reason, note) of a point that ran to its end."""
    measured, latency, capacity = ev.measured, ev.latency, ev.capacity
    releases = np.array([r.scheduled_release_s for r in measured])
    within = bool(capacity) and p.rate_qps <= (capacity or 0.0)  # the workers together can serve this rate
    exact = p.arrival in ("fixed", "poisson") and p.max_queue_delay_s is None and not ev.failed  # each window
    served = _served_share(p, ev, exact)
    lost = served < 1.0 - UNSERVED_FRACTION  # a rise that fell back again lost no load
    trend = congestion(latency, releases)
    if not trend and capacity and not within:  # no queue levels off beyond the capacity: every batch counts
        whole = congestion(latency, releases, later_half=False)
        if whole and lost:
            trend = f"{whole} over its {len(measured)} measured batches, beyond the workers' capacity of " \
                    f"{capacity:.0f} q/s"
        elif p.arrival != "fixed" and exact and (share := _steady_served(measured, p.rate_qps)) < 1.0 - SHORT_BEYOND:
            trend = f"its {len(measured)} measured batches served {share:.0%} of the load offered, beyond the " \
                    f"workers' capacity of {capacity:.0f} q/s"  # random arrivals hid the queue's growth
    # a rise over the later half alone, below the capacity: dmda's sawtooth (a fast worker's queue refilled between
    # two slow-worker tasks) longer than half the window, or a queue filling; not a growing one
    halfway = bool(trend) and within and p.arrival == "fixed" and may_settle and not congestion(
        latency, releases, later_half=False)
    rising = trend or congestion(latency, releases, unserved=EXTEND_ON_RISE)
    if rising and p.arrival != "fixed" and not lost:
        return "", (f"not congested: {rising.partition(':')[0]} over its later batches, yet {served:.1%} of the load "
                    "offered over the measured batches was served (a random burst's queue)")
    later = measured[len(measured) // 2:]
    window = _busy_window(p, later)
    shares = utilisation(ev.busy, window) if later else []
    used = [u for w, u in enumerate(shares) if any(t.worker == w for r in later for t in r.tasks)]
    busiest, least_used = max(used, default=0.0), min(used, default=0.0)
    spare = within and min(shares, default=1.0) < SATURATED_BUSY  # within, and one worker has time left
    # queues grow only where workers are saturated, or (fixed arrivals of one model) where batches wait for them
    steady = p.arrival == "fixed" and p.max_queue_delay_s is None and may_settle
    if trend and busiest < BUSY_TO_CONGEST and not (steady and _queued(later, ev.fastest)):
        return "", f"not congested: {trend} while the busiest worker was {busiest:.0%} busy (a disturbance)"
    exhausted = ev.first >= p.warmup + p.extensions * p.batches  # every extension granted, still rising then
    if within and may_settle and exhausted and not rising and (p.arrival == "fixed" or lost):  # the extensions' own
        rising = congestion(latency, releases, unserved=EXTEND_ON_RISE, later_half=False)  # test, every batch
    if halfway and congestion(latency, releases, unserved=EXTEND_ON_RISE, later_half=False):
        exhausted = True  # all of it rose too, if less than a lost load: still filling, whatever the extensions said
    if rising and within and may_settle and exhausted:
        return "", (f"{NOT_SETTLED}: latency still rising after {ev.first + p.batches} batches, below the workers' "
                    f"capacity of {capacity:.0f} q/s (a queue filling toward its steady state): its latency is a "
                    "lower bound")
    if trend and not halfway:
        return trend, ""
    if rising and capacity and not within:
        return f"{rising} at a rate beyond the workers' capacity of {capacity:.0f} q/s", ""
    if least_used >= SATURATED_BUSY and not spare and ev.fastest and measured and p.arrival == "fixed" \
            and p.max_queue_delay_s is None:  # the workers in use are full and none is left to settle on
        ideal = ideal_latency_s(p.batch_size, p.rate_qps, ev.ideal_of)
        if not math.isfinite(ideal):
            return (f"saturated: every worker in use at least {least_used:.0%} busy at a rate beyond the workers' "
                    f"capacity of {capacity:.0f} q/s"), ""
        over = float(latency.mean()) / ideal
        if over > SATURATED_OVER_IDEAL:  # a queue that did not show a clear trend in K batches, but is there
            return f"saturated: every worker in use at least {least_used:.0%} busy and latency {over:.1f} x the " \
                   "ideal", ""
    return "", ""


def _served_share(p: PointSpec, ev: Evidence, exact: bool) -> float:
    """The share of the load served: fixed arrivals, from the latency at the window's two ends, each averaged over
    a few batches (one batch at each end read 97 % for a point that lost 5 % beyond the capacity, two workers'
    alternating latencies there); random ones over the ends' span against the rate asked, which each window
    offers exactly; else against the releases' rate (failed batches: not served)."""
    if exact and p.arrival == "fixed":
        return ends_served(ev.latency, np.array([r.scheduled_release_s for r in ev.measured]))
    return _served(ev.measured, p.rate_qps if exact else None)


def _served(measured: list[BatchRecord], rate_qps: float | None = None) -> float:
    """The fraction of the load offered over these batches that they served: random arrivals make a queue rise
    and fall by chance (a Poisson point at 84 % of the capacity rose 21 % over its later half, served 98.9 %). Their
    ends' rate (first to last), over `rate_qps` where each window offers exactly that (fixed and Poisson arrivals),
    else over their releases' rate (first to last: its span's ends are random, and at 74-80 % of the capacity two
    seeds of 20 read 8-9 % unserved that way)."""
    sizes = np.array([r.size for r in measured])
    offered = rate_qps or queries_per_s(np.array([r.scheduled_release_s for r in measured]), sizes)
    return queries_per_s(np.array([r.end_s for r in measured]), sizes) / offered if offered > 0 else 0.0


def _steady_served(measured: list[BatchRecord], rate_qps: float) -> float:
    """The share of `rate_qps` these batches served, as the slope of queries served against their ends (one late
    last batch moves it little: a first-to-last span read 94 % for a point that kept up but for one hiccup)."""
    ends = np.sort(np.array([r.end_s for r in measured]))
    served = np.cumsum(np.array([r.size for r in sorted(measured, key=lambda r: r.end_s)], dtype=np.float64))
    dt = ends - ends.mean()
    spread = float(dt @ dt)
    return float(dt @ (served - served.mean())) / spread / rate_qps if spread > 0 and rate_qps > 0 else 1.0


def _queued(later: list[BatchRecord], fastest: float | None) -> bool:
    """Whether most of these batches waited longer than a task for a worker: with fixed arrivals of one model below
    capacity no batch waits, so this is a queue, however busy the workers look. (Busy time is the tasks' own: at
    680,000 q/s a one-Add worker was 88 % busy, the rest the runtime's cost per task, while its batches waited
    0.5 ms.) Random arrivals wait by chance, and a mix's batches behind the other models' tasks: not asked there."""
    waits = [min(t.start_s for t in r.tasks) - r.actual_release_s for r in later if r.tasks]
    return bool(waits) and fastest is not None and float(np.median(waits)) > fastest
