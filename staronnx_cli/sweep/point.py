"""One point (N, rho): its arrival schedule, one scheduler run, and the rows it adds to points.csv and batches.csv."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..load.schedule import BatchSchedule, arrivals, batch_schedule, dynamic_batch_schedule
from ..metrics.points import (
    UNSERVED_FRACTION,
    capacity_qps,
    congestion,
    draining,
    ends_served,
    ideal_latency_s,
    latency_parts,
    summarize,
    utilisation,
)
from ..results.schema import RETRIED, SLOWED
from ..results.tasks import pack_tasks
from ..runtime.loop import RealLoop, VirtualLoop
from ..runtime.perfmodel import PerfModel
from ..runtime.scheduler import BatchRecord, Limits, Scheduler
from ..runtime.workers import WorkerSpec
from .judge import EXTEND_ON_RISE, Evidence, Verdict, judge_point, slowdown


@dataclass(frozen=True)
class PointSpec:
    batch_size: int
    rate_qps: float
    warmup: int
    batches: int
    arrival: str = "fixed"
    max_queue_delay_s: float | None = None  # None: the paper's batching (wait for N queries)
    seed: int = 0
    extensions: int = 4  # at most this many times K more batches while a queue still fills (see PointJudge)

    @property
    def planned(self) -> int:
        """Batches released before any extension: the warm-up and the measured ones."""
        return self.warmup + self.batches

    @property
    def most_batches(self) -> int:
        return self.warmup + self.batches * (1 + self.extensions)


def point_schedule(p: PointSpec) -> tuple[np.ndarray, BatchSchedule]:
    """The whole point's arrivals and batches, computed before it runs (plain data), extensions included."""
    queries = p.batch_size * p.most_batches
    blocks = [p.batch_size * p.warmup] + [p.batch_size * p.batches] * (1 + p.extensions)  # each at the rate asked
    times = arrivals(p.arrival, p.rate_qps, queries, p.seed, blocks)
    if p.max_queue_delay_s is None:
        return times, batch_schedule(times, p.batch_size)
    return times, dynamic_batch_schedule(times, p.batch_size, p.max_queue_delay_s)


JUDGING = 9
"""The version of the rules a point is measured and judged by, in run.json (--resume keeps a run to one): 2 added the
floors in time of the warm-up and the measured batches, the backlog bound's 1 ms of hiccups and the judge's
'batches waited' test; 3 judges the latency trend of a point beyond the capacity over all its measured batches, and
with random arrivals against the load served; its Poisson arrivals come at exactly the rate asked for in the warm-up
and in each window of measured batches; achieved_qps is counted over the batches' ends. 4 compares what fixed and
Poisson points served with the rate asked for (exact in each window), not with their releases' first-to-last span,
and beyond the capacity calls a point that served less than 95 % of its load congested without a trend. 5 calls a
point within the capacity not settled when, after every extension, its latency still rises over all its measured
batches (the extensions' own test; a later half had hidden two workers' sawtooth). 6 keeps 5's not settled test
to fixed arrivals and random ones that lost load, and 4's served rule beyond the capacity to random arrivals, there
as the slope of queries served against their ends (one late last batch read 94 % for a point that kept up); a
point with failed batches is compared with its releases, not the rate asked for. 7: below the capacity, with fixed
arrivals, a rise over the later half of the measured batches is congestion only where all of them rise too (a GPU
at 1.04 ms per batch of a 1,000 q/s stream, two CPU workers beside it: dmda's 27-batch sawtooth rose over the later
half of K = 20 while the whole window, with a drop in it, did not; the point was called congested at half the
capacity; on the H100 platform's googlenet, N=1 at 519 of 611 q/s, a 12-batch sawtooth); and what fixed arrivals
served is read from the latency at the window's two ends, each the mean of 4 batches (one batch at each end read
97 % for a point that lost 5 % beyond the capacity). 8 extends a point within the capacity whose latency falls
significantly over its latest K batches, as one whose latency rises (a backlog a disturbance left, draining: an
advise confirmation measured 142 ms for a setup that serves its rate in 19), and notes one still falling after
every extension: its latency is an upper bound. 9 also extends a point of fixed arrivals within the capacity whose
latest K batches end a lost load's share (3 %) above where they began, trend or not (a 2.4 ms stall in the last
batches of a 5 ms window, tiny_cnn N=4 at 21,450 q/s, read 72 % of the load served, and the point was taken as
uncongested without a second look); and a real point congested at RETRY_BELOW of its capacity or less, or with slowed
tasks, is measured once more (the second try's row and batches kept, its reason saying so)."""

WARMUP_S = 0.002
"""A point's warm-up lasts at least this long: after the pause between two points a worker's first runs are slow
(cold caches: a one-Add model's first run took 75-200 us instead of 2 on the 2-core VM measured, tiny_cnn's
first few ~300 us more in all), and at 20,000 batches/s five warm-up batches are 0.25 ms, over before the queue
this leaves has drained: the measured batches then start with a backlog no steady stream at that rate has."""


FLOOR_BATCHES = 4096  # the most batches a floor in time adds (1e9 q/s would otherwise schedule 27 million)


def _within(seconds: float, rate_qps: float, batch_size: int) -> int:
    """The batches arriving within `seconds` at this rate, at most FLOOR_BATCHES."""
    batches = rate_qps / batch_size * seconds
    return min(FLOOR_BATCHES, math.ceil(batches - 1e-9)) if math.isfinite(batches) else FLOOR_BATCHES


def warmup_for(warmup: int, rate_qps: float, batch_size: int) -> int:
    """The warm-up batches of a point: the W asked for, or the batches arriving within WARMUP_S if more (none
    where none was asked for: `--warmup 0` measures from the first batch)."""
    return max(warmup, _within(WARMUP_S, rate_qps, batch_size)) if warmup > 0 else 0


MEASURE_S = 0.005
"""A point's measured batches span at least this long: at 600,000 q/s fifty batches are 83 us, too short for a
queue's trend to show (a one-Add model's point there was judged uncongested with a latency 200 times its run)."""


def measured_for(batches: int, rate_qps: float, batch_size: int) -> int:
    """The measured batches of a point: the K asked for, or the batches arriving within MEASURE_S if more."""
    return max(batches, _within(MEASURE_S, rate_qps, batch_size))


def point_of(batch_size: int, rate_qps: float, warmup: int, batches: int, arrival: str = "fixed",
             max_queue_delay_s: float | None = None, seed: int = 0) -> PointSpec:
    """Point (N, rho) of a sweep asking W warm-up and K measured batches, each at least its floor in time."""
    return PointSpec(batch_size, rate_qps, warmup_for(warmup, rate_qps, batch_size),
                     measured_for(batches, rate_qps, batch_size), arrival, max_queue_delay_s, seed)


MAX_BACKLOG = 64  # a worker more than ~30 times slower than the fastest is left to the time cap
MAX_BURST_BACKLOG = 256  # random arrivals: bursts beyond this are left to the trend tests and the time cap


def max_backlog(workers: int, services_s=()) -> int:
    """Unfinished batches beyond which a point is congested. With unequal workers dmda lets the fast worker's
    queue grow until a slow worker's expected end is sooner: up to S_slow / S_fast batches deep in steady
    state, so the bound grows with that ratio (a GPU at 6.75 ms and a CPU group at 120 ms: 18 deep)."""
    known = [s for s in services_s if s > 0 and s == s]
    ratio = math.ceil(max(known) / min(known)) if known else 1
    return max(8, 4 * workers, min(2 * ratio + 2 * workers, MAX_BACKLOG))


JITTER_S = 0.001
"""A backlog this machine's own hiccups make is not congestion: a worker's first run after the pause between two
points (75-200 us on the 2-core VM measured, cold caches), a timer interrupt, a preempted vCPU (up to ~1 ms). At
100,000 batches/s, 8 unfinished batches are 80 us of such a hiccup, so the bound also allows the batches released
within this long (capped, as the count is, at half the point's batches)."""


def backlog_bound(workers: int, services_s, planned: int, batches_per_s: float) -> int:
    """Unfinished batches beyond which a point of `planned` batches at `batches_per_s` is congested: the count
    `max_backlog` gives, or the batches released within JITTER_S if more, at most half the point's batches (a short
    point is judged too), never below what the workers hold."""
    jitter = math.ceil(batches_per_s * JITTER_S) if math.isfinite(batches_per_s) else 0
    return max(workers + 1, min(max(max_backlog(workers, services_s), jitter), planned // 2))


BURST_LOAD = 0.9  # random arrivals: the bound allows the bursts an ideal system would see at this load at most
BURST_MARGIN = 2  # ... and this many times them (a real system's backlog is the ideal's and its own jitter)


def burst_backlog(release_s: np.ndarray, services_s: list[float]) -> int:
    """The most batches an ideal system would hold unfinished on these very releases: each batch on the worker
    that ends it first, every task taking S_w(N), at the point's own load or BURST_LOAD if that is higher (beyond
    it the ideal queue grows without bound: that is congestion, for the trend tests to find, not a burst)."""
    if not services_s or len(release_s) < 2:
        return 0
    span = float(release_s[-1] - release_s[0])
    load = (len(release_s) - 1) / span / sum(1 / s for s in services_s) if span > 0 else math.inf
    scale = min(1.0, BURST_LOAD / load) if load > 0 else 1.0
    services = [s * scale for s in services_s]
    free = [0.0] * len(services)
    ends: list[float] = []  # a heap of the unfinished batches' ends
    most = 0
    for release in release_s.tolist():
        while ends and ends[0] <= release:
            heapq.heappop(ends)
        w = min(range(len(services)), key=lambda i: max(free[i], release) + services[i])
        free[w] = max(free[w], release) + services[w]
        heapq.heappush(ends, free[w])
        most = max(most, len(ends))
    return most


def stream_backlog(workers: int, services_s, release_s: np.ndarray, planned: int, batches_per_s: float,
                   bursty: bool) -> int:
    """One stream's backlog bound (`backlog_bound`); `bursty` (random arrivals, or batches released on a queue
    delay): raised to allow the bursts the releases themselves make, twice over (bursts are not congestion)."""
    bound = backlog_bound(workers, services_s, planned, batches_per_s)
    known = [float(s) for s in services_s if s and s > 0 and s == s]
    if bursty and len(known) == workers:
        burst = burst_backlog(release_s[:planned], known)
        bound = max(bound, min(BURST_MARGIN * burst + workers, MAX_BURST_BACKLOG))
    return bound


def time_cap_s(duration_s: float) -> float:
    """How long a point may run at most: half again its schedule, and 10 s for a slow start."""
    return 1.5 * duration_s + 10.0


def limits_for(schedule: BatchSchedule, p: PointSpec, workers: int, services_s=(), judge=None) -> Limits:
    duration = float(schedule.release_s[-1]) if schedule.batches else 0.0
    planned = min(schedule.batches, p.planned)
    bound = stream_backlog(workers, services_s, schedule.release_s, planned, p.rate_qps / p.batch_size,
                           p.arrival != "fixed" or p.max_queue_delay_s is not None)
    return Limits(max_backlog=bound, time_cap_s=time_cap_s(duration),
                  planned=planned, step=p.batches, extend=judge.extend if judge else None)


WATCH_WINDOW = 60


class PointJudge:
    """Watches a running point's batches: stops it early when it is clearly overloaded, and extends it while its
    queue is still filling toward a steady state.

    Early stop (`watch`), deliberately conservative: every 10 batches from the 30th, when the last 60 batches
    show latency rising by more than 10 % of elapsed time at 6 standard errors, and the rate is beyond the
    workers' capacity N * sum(1 / S_w(N)) (or that is unknown). Below capacity a rising latency is a queue that
    has not settled: with unequal workers, dmda lets the fast worker's queue grow until a slow worker's expected
    end is sooner, which takes many batches near the fast worker's own capacity.
    Extension (`extend`, asked when the planned W + K batches are released): K more batches, up to
    `extensions` times, while the latest K finished batches still show a significantly rising latency (0.5 % of
    elapsed time: more sensitive than the final test, since running on only costs time), or one falling as fast
    (a backlog a disturbance left, draining: their mean would overstate the steady latency), or, with fixed
    arrivals, ends a lost load's share above where it began (a stall at its end that noise hid from the trend), and
    the rate is within capacity. The point is then judged on its last K batches.
    """

    def __init__(self, p: PointSpec, capacity_qps: float | None = None):
        self.p = p
        self.below_capacity = capacity_qps is not None and p.rate_qps <= capacity_qps
        self.steady = p.arrival == "fixed" and p.max_queue_delay_s is None  # each window offers exactly the rate
        self.latencies: deque = deque(maxlen=max(WATCH_WINDOW, p.batches))
        self.releases: deque = deque(maxlen=max(WATCH_WINDOW, p.batches))
        self.seen = 0
        self.extended = 0

    def watch(self, record: BatchRecord) -> str:
        if record.index < self.p.warmup or record.error:
            return ""
        self.seen += 1
        self.latencies.append(record.end_s - record.first_arrival_s)
        self.releases.append(record.scheduled_release_s)
        if self.seen < 30 or self.seen % 10 or self.below_capacity:
            return ""
        return congestion(np.array(self.latencies)[-WATCH_WINDOW:], np.array(self.releases)[-WATCH_WINDOW:],
                          t_threshold=6.0, unserved=0.10)

    def extend(self) -> bool:
        if self.extended >= self.p.extensions or not self.below_capacity:
            return False
        latest = self.p.batches
        recent = np.array(self.latencies)[-latest:]  # the whole window that would be measured, not its later half
        releases = np.array(self.releases)[-latest:]
        rising = congestion(recent, releases, min_batches=len(recent), unserved=EXTEND_ON_RISE)
        stalled = self.steady and ends_served(recent, releases) < 1.0 - UNSERVED_FRACTION  # no trend in the noise
        if rising or stalled or draining(recent, releases):  # filling, stalled at its end, or a backlog draining
            self.extended += 1
            return True
        return False


def latency_watch(warmup: int):
    """The early-stop test alone (no capacity known: it may stop a point below capacity too)."""
    return PointJudge(PointSpec(1, 1.0, warmup, 2, extensions=0)).watch


def first_measured(p: PointSpec, records: list[BatchRecord]) -> int:
    """The measured batches are the last K released (W of warm-up, plus any extension before them)."""
    released = sum(1 for r in records if math.isfinite(r.actual_release_s))
    return max(p.warmup, released - p.batches)


@dataclass
class SchedulerSetup:
    """What `run_point` needs of an engine: its workers, the performance models dmda predicts with, its clock and
    what runs a point (an Engine has these members; tests and scripts build this one around the scheduler)."""

    workers: list[WorkerSpec]
    perf: PerfModel
    loop_factory: Callable[[], VirtualLoop] = RealLoop  # a RealLoop is a VirtualLoop that waits

    def runner(self, loop, executor, policy, graph) -> Scheduler:
        return Scheduler(loop, executor, self.workers, policy, self.perf, graph)


def run_point(p: PointSpec, engine, executor, policy, graph, services_s=(), on_batch=None):
    """Run one point on `executor` and return (records, stop reason, arrival times, first measured batch).
    `engine`: its workers, clock (`loop_factory`) and `runner(loop, executor, policy, graph)`, what runs the point
    (the scheduler; the native baseline's plain loop). `services_s`: S_w(N) per worker, for the capacity the
    judge and the backlog bound use. `on_batch(record)`: told of each finished batch (under the loop's lock, on
    whichever thread finished it: keep it short)."""
    times, schedule = point_schedule(p)
    loop = engine.loop_factory()
    executor.loop = loop
    scheduler = engine.runner(loop, executor, policy, graph)
    workers = len(engine.workers)
    known = _services(list(services_s), workers)
    judge = PointJudge(p, _capacity(p.batch_size, known, workers))
    watch = judge.watch
    if on_batch is not None:  # e.g. the progress bar; told of every finished batch before the judge

        def watch(record: BatchRecord) -> str:
            on_batch(record)
            return judge.watch(record)

    records, stop = scheduler.run(schedule, limits_for(schedule, p, workers, known, judge), watch)
    return records, stop, times, first_measured(p, records)


def point_row(p: PointSpec, records: list[BatchRecord], stop: str, times: np.ndarray, worker_names: list[str],
              service_s, first: int | None = None, shared_with: list[BatchRecord] | None = None) -> dict:
    """The points.csv row: the summary of the measured batches, utilisation, release lateness, the ideal.

    `service_s`: S(N) (one number), or S_w(N) per worker (unequal workers: the ideal latency fills the fastest
    first, the capacity is N * sum(1 / S_w)). `first`: the first measured batch (default: after the warm-up).
    `shared_with`: a mix's batches of every model: their tasks keep the workers busy too, and a latency rising
    below the model's own capacity is not taken for a queue settling (the workers are shared).
    """
    ev = evidence(p, records, service_s, len(worker_names), first, shared_with)
    verdict = judge_point(p, stop, ev, may_settle=shared_with is None)
    return _row(p, ev, verdict, records, times, worker_names)


def evidence(p: PointSpec, records: list[BatchRecord], service_s, workers: int, first: int | None = None,
             shared_with: list[BatchRecord] | None = None) -> Evidence:
    """What the verdict and the row are drawn from: the measured batches, the workers' busy time, the capacity."""
    first = p.warmup if first is None else first
    services = _services(service_s, workers)
    measured = [r for r in records[first:] if math.isfinite(r.end_s) and not r.error]
    busy = [[(t.start_s, t.end_s) for r in (shared_with or records) for t in r.tasks if t.worker == w]
            for w in range(workers)]
    return Evidence(measured, np.array([r.end_s - r.first_arrival_s for r in measured]), busy,
                    _capacity(p.batch_size, services, workers), min(services) if services else None,
                    service_s if np.isscalar(service_s) or service_s is None else services, first,
                    any(r.error for r in records))


def _row(p: PointSpec, ev: Evidence, verdict: Verdict, records: list[BatchRecord], times: np.ndarray,
         worker_names: list[str]) -> dict:
    measured, capacity, fastest = ev.measured, ev.capacity, ev.fastest
    if measured:
        query_times = np.concatenate([times[r.first_query:r.first_query + r.size] for r in measured])
        window = (measured[0].first_arrival_s, max(r.end_s for r in measured))
    else:
        query_times, window = np.array([]), (0.0, 0.0)
    sizes = np.array([r.size for r in measured], dtype=np.int64)
    summary = summarize(np.array([r.first_arrival_s for r in measured]), np.array([r.end_s for r in measured]),
                        query_times, sizes, window[1] - window[0], verdict.reason)
    released = [r for r in records if math.isfinite(r.actual_release_s)]
    lateness = np.array([r.actual_release_s - r.scheduled_release_s for r in released])
    row = {"batch_size": p.batch_size, "rate_qps": p.rate_qps, "arrival": p.arrival,
           "max_queue_delay_ms": "" if p.max_queue_delay_s is None else round(1000 * p.max_queue_delay_s, 3),
           **{k: _cell(v) for k, v in summary.__dict__.items()},
           "mean_queries_per_batch": round(float(sizes.mean()), 3) if sizes.size else "",
           "utilisation": " ".join(f"{n}={u:.3f}" for n, u in zip(worker_names, utilisation(ev.busy, window))
                                   if math.isfinite(u)),
           "release_lateness_p99_us": round(float(np.percentile(lateness, 99) * 1e6), 1) if lateness.size else "",
           "service_ms": round(1000 * fastest, 4) if fastest else "", "ideal_latency_ms": "",
           "latency_over_ideal": "", "errors": "; ".join(sorted({r.error for r in records if r.error})),
           "warmup_batches": min(ev.first, len(released)), "capacity_qps": round(capacity, 2) if capacity else ""}
    if (ratio := slowdown(ev)) > 0:  # how much slower than alone the tasks ran (workers busy at once, a neighbour)
        row["task_over_s"] = round(ratio, 3)
    if measured and all(r.tasks for r in measured) and not summary.congested:
        parts = latency_parts(*(np.array(values) for values in zip(*[
            (r.first_arrival_s, r.scheduled_release_s, min(t.start_s for t in r.tasks), r.end_s) for r in measured])))
        row.update({key: round(1000 * value, 4) for key, value in zip(("fill_ms", "wait_ms", "run_ms"), parts)})
    if verdict.note and not summary.congested:
        row["reason"] = verdict.note
    if ev.failed and not measured:  # nothing ran: failed, as a batch size the workers cannot run, not congested
        row.update(congested=False, reason=f"failed: {verdict.reason}")
    if summary.congested:
        for key in ("mean_max_latency_ms", "std_max_latency_ms", "p50_latency_ms", "p90_latency_ms", "p95_latency_ms",
                    "p99_latency_ms"):
            row[key] = ""
    elif fastest and p.arrival == "fixed" and p.max_queue_delay_s is None and measured:
        ideal = ideal_latency_s(p.batch_size, p.rate_qps, ev.ideal_of)
        if math.isfinite(ideal):
            row["ideal_latency_ms"] = round(1000 * ideal, 4)
            row["latency_over_ideal"] = round(float(ev.latency.mean()) / ideal, 4)
    return row


def _cell(value):
    """A summary figure as points.csv holds it: rounded, and empty where unknown (no batch measured: 'nan' was
    written beside the other empty cells)."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else ""
    return value


def _capacity(batch_size: int, services: list[float], workers: int) -> float | None:
    """N * sum(1 / S_w(N)) when every worker's S(N) is known, else None."""
    return capacity_qps(batch_size, services) if services and len(services) == workers else None


def _services(service_s, workers: int) -> list[float]:
    """S(N) as one number (identical workers) or one per worker -> the known per-worker values."""
    if service_s is None:
        return []
    if isinstance(service_s, (int, float, np.number)):
        return [float(service_s)] * workers if service_s > 0 and service_s == service_s else []
    return [float(s) for s in service_s if s is not None and s > 0 and s == s]


RETRY_BELOW = 0.5
"""A point congested at this share of its capacity or less (or with its tasks slowed) is measured once more before it
condemns every higher rate: a one-off stall of the machine (a neighbour, a preempted vCPU) congests a point at 11-18
% of its capacity (tiny_cnn at 5,000 q/s, an advise confirmation), and a slow spell one at 80 % (googlenet N=4)."""


def worth_a_second_try(row: dict, slowed: bool = True) -> bool:
    """Whether a real point's row is congested where its capacity says it should not be (see RETRY_BELOW);
    `slowed`: whether slowed tasks alone are reason enough (once per batch size)."""
    reason, capacity = str(row.get("reason") or ""), row.get("capacity_qps")
    if not row.get("congested") or RETRIED in reason or not isinstance(capacity, (int, float)) or capacity <= 0:
        return False
    return float(row["rate_qps"]) <= RETRY_BELOW * capacity or (slowed and SLOWED in reason)


def second_try_reason(second: dict, first: dict) -> str:
    """The second try's reason, saying the first congested (and why): the row is the second try's."""
    said = f"{RETRIED}: the first try congested at {float(first['rate_qps']) / first['capacity_qps']:.0%} of the " \
           f"capacity ({first['reason']})"
    return f"{second['reason']}; {said}" if second.get("reason") else said


def batch_rows(p: PointSpec, records: list[BatchRecord], worker_names: list[str], first: int | None = None
               ) -> list[dict]:
    """The batches.csv rows: every released batch, warm-up ones (and any extension) flagged `measured = False`."""
    first = p.warmup if first is None else first
    rows = []
    for r in records:
        if not math.isfinite(r.actual_release_s):
            continue
        rows.append({
            "batch_size": p.batch_size, "rate_qps": p.rate_qps, "batch_index": r.index, "queries": r.size,
            "measured": r.index >= first, "first_arrival_s": round(r.first_arrival_s, 7),
            "scheduled_release_s": round(r.scheduled_release_s, 7), "actual_release_s": round(r.actual_release_s, 7),
            "end_s": round(r.end_s, 7),
            "first_query_latency_ms": round(1000 * (r.end_s - r.first_arrival_s), 4),
            **pack_tasks(r.tasks, worker_names), "error": r.error})
    return rows
