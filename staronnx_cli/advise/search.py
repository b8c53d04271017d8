"""The search: batch sizes in increasing order; at each, every candidate that could still be among the 3 best at
some target rate is simulated there (a process pool), the rest pruned by the bounds, and the 3 least latencies
per rate kept (confirmation measures the 3 best). A batch size whose formation time (N-1)/rate alone exceeds the
third least latency at every rate ends the search: no larger batch size can enter the 3. Under a latency bound,
the bar is the bound itself: every candidate within it is simulated, to be ranked by its headroom (confirm.py)."""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis.verdict import qps
from ..inputdata import RANDOM, InputData
from ..results.schema import unsettled
from .space import Candidate, Target, candidates, worker_kinds
from .times import bounds, calibrate_all, calibration_estimate_s, check_budget


@dataclass
class SearchSettings:
    model_name: str
    targets: list[Target]
    layouts: list[str]
    batch_sizes: tuple[int, ...]
    rates: tuple[float, ...]
    policies: tuple[str, ...]
    out: Path
    latency_bound_ms: float | None = None
    batches: int = 50
    warmup: int = 5
    seed: int = 0
    jobs: int = 1
    budget_s: float = 600.0
    platforms: dict[str, Path] | None = None  # layout -> platform file (simulating a platform's machine)
    one_run_s: float = 0.0  # the model's end-to-end run at batch 1, for calibration estimates
    cores: int = 1
    input_data: InputData = RANDOM  # what confirmations feed the model


@dataclass
class SearchResult:
    rows: list[dict] = field(default_factory=list)  # candidates.csv: one per (candidate, rate)
    best: dict[float, dict] = field(default_factory=dict)  # rate -> the row of least predicted latency
    simulated: int = 0
    pruned: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def simulate(c: Candidate, rates: list[float], out: Path, platform: Path | None, model_name: str, batches: int,
             warmup: int, fed: tuple[int, InputData]) -> list[dict]:
    """One candidate at its rates on the virtual clock (the sweep's own code: judge, congestion, points.csv); `fed`:
    the seed, and the input data whose learnt times (this host's) it simulates with."""
    from ..sweep.runner import SweepSettings, run_sweep

    seed, data = fed
    settings = SweepSettings(Path(c.target.path), out, workers=c.layout, policy=c.policy, batch_sizes=(c.batch_size,),
                             rates=tuple(sorted(rates)), batches=batches, warmup=warmup, engine="sim",
                             platform=platform, seed=seed, force=True, model_name=model_name,
                             command=f"staronnx advise: {c.setup}", input_data=data if platform is None else RANDOM)
    return run_sweep(settings)


def _row(c: Candidate, rate: float, status: str, b=None, point: dict | None = None) -> dict:
    point = point or {}
    latency = point.get("mean_max_latency_ms")
    return {"target": c.target.key, "parts": c.target.parts, "offload": c.target.offload, "layout": c.layout,
            "policy": c.policy, "batch_size": c.batch_size, "rate_qps": rate, "status": status,
            "predicted_latency_ms": latency if latency not in ("", None) else None,
            "predicted_congested": point.get("congested") if point else None, "reason": point.get("reason", ""),
            "capacity_bound_qps": round(b.capacity_qps, 2) if b else None,
            "latency_lower_bound_ms": round(b.latency_ms, 4) if b else None, "candidate": c.name}


TOP = 3  # candidates kept per rate: confirmation measures these, so pruning spares the TOP best, not only the best


def eligible(point: dict) -> bool:
    """A simulated point that can answer: uncongested, with a latency that is not just a lower bound (a queue
    still filling when its batches ran out: "not settled")."""
    latency = point.get("mean_max_latency_ms")
    return bool(point) and not point.get("congested") and latency not in ("", None) \
        and not unsettled(point.get("reason"))


def search(s: SearchSettings, times, on_step=lambda text: None, pool=None,
           on_count=lambda done, total: None) -> SearchResult:
    """`on_count(done, total)`: (candidate, rate) points simulated so far, of those planned so far."""
    return _Search(s, times, on_step, pool, on_count).run()


class _Search:
    """One search's state: the TOP least latencies per rate, each N's best capacity, the rates no larger N will
    reach, the pace of simulation so far; each batch size goes through calibrate, plan, simulate."""

    def __init__(self, s: SearchSettings, times, on_step, pool, on_count):
        self.s, self.times, self.on_step, self.pool, self.on_count = s, times, on_step, pool, on_count
        self.started = time.perf_counter()
        self.result = SearchResult(pruned={"formation": 0, "capacity": 0, "lower bound": 0, "no times": 0})
        self.leaders: dict[float, list[float]] = {r: [] for r in s.rates}  # the TOP least latencies per rate
        self.capacity: dict[int, float] = {}  # N -> the highest capacity bound of any candidate
        self.hopeless: set[float] = set()  # rates no larger batch size will reach
        self.point_s: float | None = None  # wall time per simulated point so far, to foresee the next N's
        self.planned = 0
        bound = s.latency_bound_ms
        self.behind = f"the {bound:g} ms bound" if bound is not None else f"the {TOP} best latencies"

    def run(self) -> SearchResult:
        s, result = self.s, self.result
        for n in sorted(s.batch_sizes):
            live = [r for r in s.rates if 1000 * (n - 1) / r < self.bar(r) and r not in self.hopeless]
            everyone = candidates(s.targets, s.layouts, n, s.policies)
            if not live:
                for c in everyone:
                    result.rows += [_pruned_row(c, r, self.hopeless, self.behind) for r in s.rates]
                    result.pruned["formation"] += sum(r not in self.hopeless for r in s.rates)
                    result.pruned["capacity"] += sum(r in self.hopeless for r in s.rates)
                continue
            if not self.calibrate(n):
                break
            jobs = self.plan(n, everyone, live)
            if not self.simulate(n, jobs):
                break
        result.seconds = time.perf_counter() - self.started
        return result

    def left_s(self) -> float:
        """What --budget-s leaves: calibration and simulation so far count."""
        return self.s.budget_s - (time.perf_counter() - self.started)

    def bar(self, r: float) -> float:
        """What a candidate must beat at r: the bound, where one is given (every candidate within it is ranked by
        its headroom afterwards, not by its latency), else the TOP-th least latency found so far."""
        if self.s.latency_bound_ms is not None:
            return self.s.latency_bound_ms
        kept = self.leaders[r]
        return kept[TOP - 1] if len(kept) >= TOP else math.inf

    def calibrate(self, n: int) -> bool:
        """The task times N lacks, measured now if they fit in the budget (the first N must: one line if not);
        False: N and larger are not searched."""
        s = self.s
        missing = [(t, k) for t in s.targets
                   for k in sorted(self.times.missing(t.key, kinds_for(t, s.targets, s.layouts), n))]
        if not missing or s.platforms is not None:
            return True
        estimate = calibration_estimate_s(missing, n, s.one_run_s, s.cores)
        budget = self.left_s()
        if n == min(s.batch_sizes):
            check_budget(estimate, budget, n)
        elif estimate > budget:
            self.result.notes.append(f"N={n} and larger were not searched: calibrating them takes about "
                                     f"{estimate:.0f} s, more than the {budget:.0f} s of --budget-s left")
            return False
        self.on_step(f"N={n}: calibrating {len(missing)} (target, worker kind) pair(s), about {estimate:.0f} s")
        self.result.notes += calibrate_all(self.times, missing, n, self.on_step)
        return True

    def plan(self, n: int, everyone: list[Candidate], live: list[float]) -> list[tuple]:
        """(candidate, rates to simulate, bounds) of N; every pruned (candidate, rate) gets its row here."""
        result, jobs, caps = self.result, [], [0.0]
        for c in everyone:
            b = bounds(c, self.times.part_s(c.target.key, n))
            caps.append(b.capacity_qps if b else 0.0)
            todo = []
            for r in self.s.rates:
                if r not in live:
                    result.rows.append(_pruned_row(c, r, self.hopeless, self.behind, b))
                    result.pruned["capacity" if r in self.hopeless else "formation"] += 1
                elif b is None:
                    result.rows.append(_row(c, r, "pruned: no task times", b))
                    result.pruned["no times"] += 1
                elif r > b.capacity_qps:
                    result.rows.append(_row(c, r, "pruned: rate above its capacity", b))
                    result.pruned["capacity"] += 1
                elif 1000 * (n - 1) / r + b.latency_ms >= self.bar(r):
                    result.rows.append(_row(c, r, f"pruned: lower bound above {self.behind}", b))
                    result.pruned["lower bound"] += 1
                else:
                    todo.append(r)
            if todo:
                jobs.append((c, todo, b))
        self.capacity[n] = max(caps)
        _give_up_unreachable(self.s.rates, self.leaders, self.capacity, self.hopeless, result.notes)
        return jobs

    def simulate(self, n: int, jobs: list[tuple]) -> bool:
        """N's planned points, simulated if they fit in the budget at the pace so far; False: they did not."""
        result = self.result
        count = sum(len(t) for _, t, _ in jobs)
        left = self.left_s()
        if self.point_s is not None and count * self.point_s > left:
            result.notes.append(f"N={n} and larger were not searched: simulating N={n}'s {count} points takes "
                                f"about {count * self.point_s:.3g} s, more than the {max(left, 0):.3g} s of "
                                "--budget-s left")
            for c, todo, b in jobs:
                result.rows += [_row(c, r, "not searched: --budget-s", b) for r in todo]
            return False
        self.on_step(f"N={n}: simulating {count} (candidate, rate) points")
        self.planned += count
        self.on_count(result.simulated, self.planned)
        began, before = time.perf_counter(), result.simulated
        for (c, todo, b), points in zip(jobs, _run(jobs, self.s, self.pool)):
            by_rate = {float(p["rate_qps"]): p for p in points}
            for r in todo:
                self.record(c, r, b, by_rate.get(float(r), {}))
            self.on_count(result.simulated, self.planned)
        if result.simulated > before:
            self.point_s = (time.perf_counter() - began) / (result.simulated - before)
        return True

    def record(self, c: Candidate, r: float, b, point: dict) -> None:
        result = self.result
        result.rows.append(_row(c, r, "simulated", b, point))
        result.simulated += 1
        if eligible(point):
            latency = float(point["mean_max_latency_ms"])
            self.leaders[r] = sorted(self.leaders[r] + [latency])[:TOP]
            if r not in result.best or latency < result.best[r]["predicted_latency_ms"]:
                result.best[r] = result.rows[-1]


def kinds_for(target: Target, targets: list[Target], layouts: list[str]) -> set[str]:
    """The worker kinds a target runs on, as `candidates` places it (a plan's single-worker kinds are not
    calibrated for nothing)."""
    return {k for c in candidates(targets, layouts, 1) if c.target == target for k in worker_kinds(c.layout)}


def _pruned_row(c: Candidate, r: float, hopeless: set[float], behind: str, b=None) -> dict:
    if r in hopeless:
        return _row(c, r, "pruned: beyond every capacity, which stopped growing with N", b)
    return _row(c, r, f"pruned: formation time above {behind}", b)


GROWTH = 1.05  # a doubling of N that raises the best capacity less than this: larger N will not reach a rate


def _give_up_unreachable(rates, leaders, capacity: dict[int, float], hopeless: set[float], notes: list[str]) -> None:
    """A rate no candidate serves yet, beyond every capacity, while the best capacity has stopped growing with N
    (less than 5 % per doubling of N in each of the last two steps): larger batch sizes are not calibrated for it
    (on a CPU, a model's time per sample hardly falls with N, so neither does the capacity rise)."""
    sizes = sorted(capacity)
    if len(sizes) < 3:
        return
    (n0, n1, n2), (first, before, now) = sizes[-3:], (capacity[n] for n in sizes[-3:])
    slow = now < GROWTH ** math.log2(n2 / n1) * before and before < GROWTH ** math.log2(n1 / n0) * first
    for r in rates:
        if r not in hopeless and not leaders[r] and r > now and slow:
            hopeless.add(r)
            notes.append(f"{qps(r)} q/s is beyond every candidate: the highest capacity went from {qps(first)} q/s "
                         f"(N={n0}) to {before:.4g} (N={n1}) and {now:.4g} (N={n2}), less than 5 % per doubling "
                         "of N; larger batch sizes were not searched for it")


def _run(jobs, s: SearchSettings, pool):
    """Each job's points, in the order of `jobs`, as they come (the caller counts them)."""
    args = [(c, todo, s.out / "sim" / c.name, (s.platforms or {}).get(c.layout), s.model_name, s.batches, s.warmup,
             (s.seed, s.input_data)) for c, todo, _ in jobs]
    return map_simulations(args, pool)


def map_simulations(args: list[tuple], pool):
    """simulate(*a) for each a, in order: on the pool (Ray always, so that one engine runs them all; a process
    pool from two on), else here."""
    if pool is None or (len(args) < 2 and not hasattr(pool, "ray")):
        return (simulate(*a) for a in args)
    return pool.map(simulate_args, args)


def simulate_args(args) -> list[dict]:
    """simulate() of one argument tuple: what a pool's map sends to its workers."""
    return simulate(*args)


def process_pool(jobs: int, ray: bool = False, ray_address: str | None = None, log: Path | None = None):
    """A pool of `jobs` processes (None: simulate in this process), or a Ray cluster's workers (Ray's own output
    in `log`)."""
    if ray:
        import tempfile

        from .raypool import RayPool

        return RayPool(ray_address, simulate_args, log or Path(tempfile.gettempdir()) / "staronnx-ray.log")
    if jobs <= 1:
        return None
    import multiprocessing

    # forkserver: children forked from a clean server, not from this process and its threads (ONNX Runtime's
    # pools after calibration, Rich's refresh thread), which fork() would copy mid-lock
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["staronnx_cli.advise.search", "staronnx_cli.sweep.runner",
                                    "staronnx_cli.systems.sim"])  # imported once, before the children fork
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context)
