"""One point (N, rho): its arrival schedule, one scheduler run, and the rows it adds to points.csv and batches.csv."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..load.schedule import BatchSchedule, arrivals, batch_schedule, dynamic_batch_schedule
from ..metrics.points import congestion, ideal_latency_s, summarize, utilisation
from ..runtime.loop import RealLoop
from ..runtime.scheduler import BatchRecord, Limits, Scheduler


@dataclass(frozen=True)
class PointSpec:
    batch_size: int
    rate_qps: float
    warmup: int
    batches: int
    arrival: str = "fixed"
    max_queue_delay_s: float | None = None  # None: the paper's batching (wait for N queries)
    seed: int = 0


def point_schedule(p: PointSpec) -> tuple[np.ndarray, BatchSchedule]:
    """The whole point's arrivals and batches, computed before it runs (plain data)."""
    queries = p.batch_size * (p.warmup + p.batches)
    times = arrivals(p.arrival, p.rate_qps, queries, p.seed)
    if p.max_queue_delay_s is None:
        return times, batch_schedule(times, p.batch_size)
    return times, dynamic_batch_schedule(times, p.batch_size, p.max_queue_delay_s)


def limits_for(schedule: BatchSchedule, workers: int) -> Limits:
    duration = float(schedule.release_s[-1]) if schedule.batches else 0.0
    return Limits(max_backlog=max(8, 4 * workers), time_cap_s=1.5 * duration + 10.0)


WATCH_WINDOW = 60
BUSY_TO_CONGEST = 0.9  # a rising latency with every worker less busy than this is noise, not a queue
SATURATED_BUSY, SATURATED_OVER_IDEAL = 0.97, 2.0  # no clear trend, but workers full and latency twice the ideal


def latency_watch(warmup: int):
    """Online trend test, deliberately conservative: every 10 batches from the 30th, stop a running point
    only when its last 60 batches show latency rising by more than 10 % of elapsed time at 6 standard
    errors. Milder growth is judged at the end (metrics.congestion): a dmda queue may grow for a while
    before another worker's expected end is sooner, then level off; the backlog bound catches gross
    overload sooner."""
    latencies: deque = deque(maxlen=WATCH_WINDOW)  # the most recent batches: a look costs the same at any k
    releases: deque = deque(maxlen=WATCH_WINDOW)
    seen = 0

    def watch(record: BatchRecord) -> str:
        nonlocal seen
        if record.index < warmup or record.error:
            return ""
        seen += 1
        latencies.append(record.end_s - record.first_arrival_s)
        releases.append(record.scheduled_release_s)
        if seen < 30 or seen % 10:
            return ""
        return congestion(np.array(latencies), np.array(releases), t_threshold=6.0, unserved=0.10)

    return watch


def run_point(p: PointSpec, executor, workers, policy, perf, graph, loop_factory=RealLoop, runner=None):
    """Run one point on `executor` and return (records, stop reason, arrival times). `runner(loop, executor,
    policy, graph)` makes what runs it (default: the scheduler; the native baseline's plain loop)."""
    times, schedule = point_schedule(p)
    loop = loop_factory()
    executor.loop = loop
    if runner is None:
        scheduler = Scheduler(loop, executor, workers, policy, perf, graph)
    else:
        scheduler = runner(loop, executor, policy, graph)
    records, stop = scheduler.run(schedule, limits_for(schedule, len(workers)), latency_watch(p.warmup))
    return records, stop, times


def point_row(p: PointSpec, records: list[BatchRecord], stop: str, times: np.ndarray, worker_names: list[str],
              service_s: float | None) -> dict:
    """The points.csv row: the summary of the measured batches, utilisation, release lateness, the ideal."""
    measured = [r for r in records[p.warmup:] if math.isfinite(r.end_s) and not r.error]
    errors = sorted({r.error for r in records if r.error})
    latency = np.array([r.end_s - r.first_arrival_s for r in measured])
    busy = [[(t.start_s, t.end_s) for r in records for t in r.tasks if t.worker == w] for w in range(len(worker_names))]
    reason, note = stop, ""
    if not stop:
        trend = congestion(latency, np.array([r.scheduled_release_s for r in measured]))
        later = measured[len(measured) // 2:]
        busiest = max(utilisation(busy, (later[0].first_arrival_s, max(r.end_s for r in later))), default=0.0) \
            if later else 0.0
        if trend and busiest < BUSY_TO_CONGEST:  # queues grow only where workers are saturated
            note = f"not congested: {trend} while the busiest worker was {busiest:.0%} busy (a disturbance)"
        elif trend:
            reason = trend
        elif busiest >= SATURATED_BUSY and service_s and measured and p.arrival == "fixed" \
                and p.max_queue_delay_s is None:
            over = float(latency.mean()) / ideal_latency_s(p.batch_size, p.rate_qps, service_s)
            if over > SATURATED_OVER_IDEAL:  # a queue that did not show a clear trend in K batches, but is there
                reason = f"saturated: busiest worker {busiest:.0%} busy and latency {over:.1f} x the ideal"
    if errors and not measured:
        reason = reason or "every batch failed"
    if measured:
        query_times = np.concatenate([times[r.first_query:r.first_query + r.size] for r in measured])
        window = (measured[0].first_arrival_s, max(r.end_s for r in measured))
    else:
        query_times, window = np.array([]), (0.0, 0.0)
    sizes = np.array([r.size for r in measured], dtype=np.int64)
    summary = summarize(np.array([r.first_arrival_s for r in measured]), np.array([r.end_s for r in measured]),
                        query_times, sizes, window[1] - window[0], reason)
    released = [r for r in records if math.isfinite(r.actual_release_s)]
    lateness = np.array([r.actual_release_s - r.scheduled_release_s for r in released])
    row = {"batch_size": p.batch_size, "rate_qps": p.rate_qps, "arrival": p.arrival,
           "max_queue_delay_ms": "" if p.max_queue_delay_s is None else round(1000 * p.max_queue_delay_s, 3),
           **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.__dict__.items()},
           "mean_queries_per_batch": round(float(sizes.mean()), 3) if sizes.size else "",
           "utilisation": " ".join(f"{n}={u:.3f}" for n, u in zip(worker_names, utilisation(busy, window))
                                   if math.isfinite(u)),
           "release_lateness_p99_us": round(float(np.percentile(lateness, 99) * 1e6), 1) if lateness.size else "",
           "service_ms": round(1000 * service_s, 4) if service_s else "", "ideal_latency_ms": "",
           "latency_over_ideal": "", "errors": "; ".join(errors)}
    if note and not summary.congested:
        row["reason"] = note
    if summary.congested:
        for key in ("mean_max_latency_ms", "std_max_latency_ms", "p50_latency_ms", "p99_latency_ms"):
            row[key] = ""
    elif service_s and p.arrival == "fixed" and p.max_queue_delay_s is None and measured:
        ideal = ideal_latency_s(p.batch_size, p.rate_qps, service_s)
        row["ideal_latency_ms"] = round(1000 * ideal, 4)
        row["latency_over_ideal"] = round(float(latency.mean()) / ideal, 4)
    return row


def batch_rows(p: PointSpec, records: list[BatchRecord], worker_names: list[str]) -> list[dict]:
    """The batches.csv rows: every released batch, warm-up ones flagged `measured = False`."""
    rows = []
    for r in records:
        if not math.isfinite(r.actual_release_s):
            continue
        tasks = sorted(r.tasks, key=lambda t: t.part)
        rows.append({
            "batch_size": p.batch_size, "rate_qps": p.rate_qps, "batch_index": r.index, "queries": r.size,
            "measured": r.index >= p.warmup, "first_arrival_s": round(r.first_arrival_s, 7),
            "scheduled_release_s": round(r.scheduled_release_s, 7), "actual_release_s": round(r.actual_release_s, 7),
            "end_s": round(r.end_s, 7),
            "first_query_latency_ms": round(1000 * (r.end_s - r.first_arrival_s), 4),
            "placement": ",".join(f"{t.part}:{worker_names[t.worker]}" for t in tasks),
            "task_times": ";".join(f"{t.part}:{t.start_s:.7f}-{t.end_s:.7f}" for t in tasks), "error": r.error})
    return rows
