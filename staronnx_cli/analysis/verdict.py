"""The answer in words: which batch size to use at which rate (and its worst-case latency), where each batch size
and the machine saturate, and, for a whole model and its split, whether splitting pushed saturation further.

"Worst-case latency" is points.csv's mean_max_latency_ms: each batch's longest query latency (its first query,
which waited for the batch to form, then for a worker, then for the service), averaged over the measured
batches. It is what the best batch size N* minimises at each rate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..hostload import busy_warnings
from ..results.read import Run
from . import envelope as env
from .envelope import PRECISION

LATENCY_CHANGE = 0.05  # a split's latency within this share of the whole model's counts as the same
KNEE = 1.25  # neighbouring measured latencies further apart than this are not interpolated between


def ms(value: float) -> str:
    """Milliseconds to three significant figures, without a trailing exponent: 204, 88.3, 2.08, 0.0412 (a fast
    model's 0.04 against 0.07 hid a 1.7x difference)."""
    if value >= 1 or value <= 0:
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    shown = f"{value:#.3g}"  # three significant figures, trailing zeros kept: 0.500; rounding up a decade: 1.00
    return shown if "e" not in shown else f"{value:.{2 - math.floor(math.log10(value))}f}"


def qps(value: float) -> str:
    """A rate as the grid holds it, never in exponent notation: 14600, 57.89, 0.5."""
    if value >= 1e12 or 0 < value < 1e-7:  # beyond what a grid holds: a typo's figure, shortened
        return f"{value:.3g}"
    return f"{value:.0f}" if value >= 1000 else f"{value:.4g}" if value >= 1e-3 else f"{value:.7f}".rstrip("0")


def run_verdict(run: Run) -> list[str]:
    """Sentences for one run: the best batch size by rate, then saturation per batch size and overall."""
    best = env.envelope(run.points)
    if best.empty:
        if run.points.empty:
            return ["No point was measured yet: run the sweep (or continue it with --resume)."]
        failed = failed_sizes(run.points)
        if every_point_failed(run.points):  # lower rates would not help
            partial = " (or at the partial batches --max-queue-delay closes: a model fixed to N runs no other)" \
                if run.meta.max_queue_delay_ms is not None else ""
            fed = str(getattr(run.meta, "input_data", "random") or "random")
            data = "" if fed == "random" else f" --input-data {fed.split(' (sha256')[0]}"  # what the sweep fed it
            return [f"Every point failed ({', '.join(f'N={n}' for n in failed)}): the model does not run at "
                    f"{'this batch size' if len(failed) == 1 else 'these batch sizes'} on these workers{partial} "
                    f"(points.csv's errors say why); check it with 'staronnx profile MODEL --batch N{data}'."]
        lowest = run.points.rate_qps.min()
        also = f"; {', '.join(f'N={n}' for n in failed)} failed at every rate" if failed else ""
        return [f"No point was uncongested (every batch size congested or failed from {qps(lowest)} q/s{also}): "
                "sweep lower rates."]
    return [_best_sentence(best), *_idle_slowed(run), *_saturation_sentences(run)]


def failed_sizes(points) -> list[int]:
    """The batch sizes that ran no batch at any of their points (uncongested and none measured: each one failed)."""
    ran = points[(points.batches > 0) | points.congested.astype(bool)].batch_size.astype(int)
    return sorted(set(points.batch_size.astype(int)) - set(ran))


def every_point_failed(points) -> bool:
    """No batch ran at any point: every batch size failed (lower rates would not help)."""
    failed = failed_sizes(points)
    return bool(failed) and set(failed) == set(points.batch_size.astype(int))


def _best_sentence(best) -> str:
    """Consecutive rates with the same N* as one range: 'N=1 from 10 to 40 q/s (worst case 7.00 to 12.5 ms)'."""
    pieces, rows = [], list(best.itertuples())
    start = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows) and rows[i].batch_size == rows[start].batch_size:
            continue
        group = rows[start:i]
        low, high = min(r.mean_max_latency_ms for r in group), max(r.mean_max_latency_ms for r in group)
        rates = (f"at {qps(group[0].rate_qps)} q/s" if len(group) == 1 else
                 f"from {qps(group[0].rate_qps)} to {qps(group[-1].rate_qps)} q/s")
        latency = f"{ms(low)} ms" if ms(low) == ms(high) else f"{ms(low)} to {ms(high)} ms"
        pieces.append(f"N={int(group[0].batch_size)} {rates} (worst-case latency {latency})")
        start = i
    return "Best batch size: " + "; ".join(pieces) + "."


def resolution(run: Run) -> float:
    """How finely this run knows rho_max, as a share of it: the auto grid's precision, or the gap between the
    highest uncongested and the first congested rate of the best batch size in an explicit grid."""
    top, n = top_rate(run)
    first = env.first_bounded(run.points).get(n) if n is not None else None
    gap = (first / top - 1) if top and first else 0.0
    return max(PRECISION, gap) if run.meta.auto_rates else gap  # auto stops early at MAX_PROBES


def top_rate(run: Run) -> tuple[float | None, int | None]:
    """The machine's rho_max (the highest uncongested rate of any N) and the N reaching it with the least
    worst-case latency there (the best N at that rate; googlenet's N=1 and N=2 both reached 72.1 q/s, N=2 at 85.1 ms
    against 85.5, and the sentence named N=1)."""
    highest = env.rho_max(run.points)
    top = max((v for v in highest.values() if v is not None), default=None)
    if top is None:
        return None, None
    at_top = env.usable(run.points)
    at_top = at_top[(at_top.rate_qps == top) & at_top.batch_size.isin([n for n, v in highest.items() if v == top])]
    best = at_top.sort_values(["mean_max_latency_ms", "batch_size"]).batch_size
    return top, int(best.iloc[0]) if len(best) else min(n for n, v in highest.items() if v == top)


def _saturation_sentences(run: Run) -> list[str]:
    highest, first_bad = env.rho_max(run.points), env.first_bounded(run.points)
    how = (f"the highest uncongested rate, to a {resolution(run):.0%} step of the rates" if run.meta.auto_rates else
           "the highest uncongested rate of the grid")  # a step, not a confidence: runs apart differ more
    per_n = []
    for size, highest_n in highest.items():
        if highest_n is None:
            failed = run.points[(run.points.batch_size == size) & ~run.points.congested.astype(bool)]
            per_n.append(f"N={size} failed" if len(failed) else f"N={size} congested at every rate")
        elif first_bad[size] is None:
            per_n.append(f"N={size} above {qps(highest_n)} q/s (never congested in the grid)")
        else:
            per_n.append(f"N={size} at {qps(highest_n)} q/s")
    top, n = top_rate(run)
    sentences = [f"Saturation (rho_max, {how}): " + ", ".join(per_n) + ".", *_below_capacity(run, first_bad)]
    if top is None or n is None:  # no batch size served any rate: the first sentence says so
        return sentences
    bad = first_bad.get(n)
    if bad is None:
        sentences.append(f"The machine serves at least {qps(top)} q/s (with N={n}): no batch size congested at the "
                         "top of the grid; sweep higher rates to find where it saturates.")
    elif resolution(run) > PRECISION:
        sentences.append(f"The machine saturates between {qps(top)} and {qps(bad)} q/s, with N={n} (its "
                         "highest uncongested and first congested rates: a finer grid, or --rate auto, narrows it).")
    else:
        sentences.append(f"The machine saturates at {qps(top)} q/s, with N={n}: above it every batch size's "
                         "queue grows without bound.")
    return sentences


LOW_LOAD = 0.3  # a rate at or below this share of the capacity: the workers idle most of the time
IDLE_SLOWED = 1.5  # tasks this many times their S(N) (back to back) at low load: cores idle between batches


def _idle_slowed(run: Run) -> list[str]:
    """Why the latency at low rates lies well above S(N): there the tasks ran slower than back to back (tiny_cnn on
    this VM: 38 us back to back, 310 us after 10 ms idle), cores left idle between batches (power saving, a virtual
    CPU put to sleep, caches emptied by other work). The latency a quiet hour sees is that one, not S(N)'s."""
    points = env.usable(run.points)
    if "task_over_s" not in points or "capacity_qps" not in points or run.meta.engine == "sim":
        return []
    ratio = pd.to_numeric(points.task_over_s, errors="coerce")
    low = points[pd.to_numeric(points.rate_qps, errors="coerce") <= LOW_LOAD * pd.to_numeric(
        points.capacity_qps, errors="coerce")].assign(ratio=ratio)
    slowed = [(int(n), float(g.ratio.median()), g) for n, g in low.groupby("batch_size") if g.ratio.median() >=
              IDLE_SLOWED]
    if not slowed:
        return []
    n, worst, group = max(slowed, key=lambda s: s[1])
    rates = (f"at {qps(group.rate_qps.min())} q/s" if len(group) == 1 else
             f"from {qps(group.rate_qps.min())} to {qps(group.rate_qps.max())} q/s")
    service = pd.to_numeric(group.get("service_ms", pd.Series(dtype=float)), errors="coerce").median()
    back = f", S(N) {ms(service)} ms back to back" if service > 0 else ""
    others = "".join(f", N={m} {r:.1f} x" for m, r, _ in slowed if m != n)
    return [f"At low load the tasks ran {worst:.1f} x S(N) (N={n} {rates}{back}{others}): cores left idle between "
            "batches run the next one slower (power saving, a virtual CPU put to sleep, caches emptied by other work), "
            "so the latency there is the idle machine's; where power saving is the cause, a performance CPU governor "
            "or shallower idle states narrow it."]


SLOWED_AT_ONCE = 1.15  # tasks this many times their S(N) alone near saturation: the workers slowed each other
BELOW_CAPACITY = 0.9  # a batch size congested below this share of its capacity (S(N) measured alone)


def _below_capacity(run: Run, first_bad: dict) -> list[str]:
    """Why a batch size saturated well below its capacity, where its tasks say: near saturation they ran slower than
    S(N) measured alone (googlenet N=4 on two 1-core workers: 150-170 ms tasks for an S(4) of 113 ms when both ran,
    congested at 53 q/s of a 71 q/s capacity). The capacity a user can plan with is the one at that speed."""
    if "task_over_s" not in run.points or "capacity_qps" not in run.points:
        return []
    said = []
    highest = env.rho_max(run.points)
    for size, bad in first_bad.items():
        mine = run.points[run.points.batch_size == size]
        capacity = pd.to_numeric(mine.capacity_qps, errors="coerce").median()
        if bad is None or not capacity > 0 or bad > BELOW_CAPACITY * capacity:
            continue
        near = mine[(mine.rate_qps >= 0.75 * bad) & (mine.rate_qps <= bad)]  # the highest rates, the first congested
        ratio = pd.to_numeric(near.task_over_s, errors="coerce").median()
        slowed_capacity = capacity / ratio if ratio > 0 else math.inf
        explains = highest.get(size) is not None and 0.8 * slowed_capacity <= bad <= 1.2 * slowed_capacity
        if ratio >= SLOWED_AT_ONCE and explains:  # the slower tasks account for where it saturated
            said.append(f"N={size} saturates below its capacity of {qps(capacity)} q/s (S(N) measured alone): near "
                        f"{qps(bad)} q/s its tasks ran {ratio:.2f} x S(N), as workers busy at once slow each other "
                        f"(memory, caches) or something else ran; at that speed its capacity is about "
                        f"{qps(capacity / ratio)} q/s.")
    return said[:2]


BUSY_DOUBT = 0.25  # a saturation change below this, with a sweep run on a busy machine, may be the machine's


def split_verdict(wholes: list[Run], split: Run) -> str:
    """Whether splitting raised saturation (by how much, or 'no'), and at which rates it lowers latency, against
    the whole model's runs measured as the split was (several: the best of them at each rate, said so)."""
    what = split.meta.plan_words()
    whole = max(wholes, key=lambda r: top_rate(r)[0] or 0.0)  # the whole model's highest saturation
    against = f" (against the best of {len(wholes)} whole-model runs)" if len(wholes) > 1 else ""
    whole_top, _ = top_rate(whole)
    split_top, _ = top_rate(split)
    if split_top is None and every_point_failed(split.points):
        return f"The split ({what}) failed at every point (no batch ran; its errors column says why): no comparison."
    if split_top is None:
        return f"The split ({what}) had no uncongested point: no comparison."
    if whole_top is None:
        return f"The split ({what}) serves up to {qps(split_top)} q/s; the whole model had no uncongested point."
    change = split_top / whole_top - 1
    tolerance = max(resolution(whole), resolution(split), PRECISION)
    open_whole, open_split = never_congested(whole), never_congested(split)
    if open_whole or open_split:  # a rho_max that is only a lower bound cannot be compared as if it were known
        whole_words = f"at least {qps(whole_top)}" if open_whole else qps(whole_top)
        split_words = f"at least {qps(split_top)}" if open_split else qps(split_top)
        which = " and ".join(name for name, is_open in (("the whole model", open_whole), ("the split", open_split))
                             if is_open)
        return (f"Splitting ({what}){against}: saturation {whole_words} q/s whole, {split_words} q/s split; {which} "
                "never congested in its grid, so which saturates first is not known: sweep higher rates. "
                + _latency_change(wholes, whole, split) + _cores_caveat(whole, split))
    if change > tolerance:
        head = (f"Splitting ({what}) raised saturation from {qps(whole_top)} to {qps(split_top)} q/s "
                f"({change:+.0%}){against}.")
    elif change < -tolerance:
        head = (f"Splitting ({what}) lowered saturation from {qps(whole_top)} to {qps(split_top)} q/s "
                f"({change:+.0%}){against}.")
    else:
        head = (f"Splitting ({what}) did not raise saturation: {qps(whole_top)} q/s whole, {qps(split_top)} q/s "
                f"split ({change:+.0%}, within the {tolerance:.0%} these sweeps resolve){against}.")
    busy = [name for name, run in (("the whole model's", whole), ("the split's", split))
            if busy_warnings(run.meta.machine_load)]
    if busy and tolerance < abs(change) < BUSY_DOUBT:  # two sweeps of one setup on a busy VM: 19 % apart
        head += (f" {' and '.join(busy).capitalize()} sweep ran on a busy machine (see the warnings): a change this "
                 "small may be the machine's, not the split's; sweep both again on a quiet machine.")
    return head + " " + _latency_change(wholes, whole, split) + _cores_caveat(whole, split)


def _cores_caveat(whole: Run, split: Run) -> str:
    """Runs on different numbers of cores: part of any difference is the cores, not the split (a whole model on
    cpu:1x1 against a split on cpu:1x1,cpu:1x1 read as 'splitting lowers latency by 50 %')."""
    def cores(run: Run) -> int:
        return len({c for held in (run.meta.worker_cores or {}).values() for c in held})

    mine, theirs = cores(split), cores(whole)
    if not mine or not theirs or mine == theirs:
        return ""
    return (f" The split ran on {mine} cores, the whole model on {theirs}: part of the difference is the "
            f"{'added' if mine > theirs else 'fewer'} cores; sweep the whole model on the split's workers too "
            f"(--workers {split.meta.workers}) to see the split's own effect.")


def best_latency_at(points, rate: float) -> float | None:
    """A run's least worst-case latency at `rate` over its batch sizes, each one's curve interpolated linearly
    between its measured uncongested rates (only batch sizes whose measured range covers the rate, and not across
    a knee: googlenet's 28.6 ms at 61.3 q/s and 85.1 ms at 72.1 drew a line that read 76.7 ms at 70.5). Where a
    batch size bending there might do better, this is an upper bound (a run's best is at most it: fleet ranks
    machine kinds by it)."""
    found = least_latency_at(points, rate, upper_bound=True)
    return None if found is None else found[0]


def least_latency_at(points, rate: float, upper_bound: bool = False) -> tuple[float, bool] | None:
    """best_latency_at's value, and whether it was read on a line between two measured rates (not measured). None
    also where a batch size whose curve bends there could be the best (unless `upper_bound`): its latency is then
    known only to be at least its lower end's (a knee skipped for N=2 left N=4's 217 ms as the best, where N=2
    measured 88 ms just below the rate: a split's gain read 79 % for about 50 %)."""
    values, floors = [], []
    for _, mine in env.usable(points).groupby("batch_size"):
        mine = mine.sort_values("rate_qps")
        rates, latencies = mine.rate_qps.to_numpy(float), mine.mean_max_latency_ms.to_numpy(float)
        if not rates[0] <= rate <= rates[-1]:
            continue
        above = int(np.searchsorted(rates, rate))  # the first measured rate at or above `rate`
        pair = latencies[above - 1:above + 1]
        if rates[above] != rate and max(pair) > KNEE * min(pair):
            floors.append(float(min(pair)))  # between its rates the curve bends (a knee, or the fill time
            continue  # (N-1)/rate): no straight line, only a bound
        values.append((float(np.interp(rate, rates, latencies)), bool(rates[above] != rate)))
    found = min(values, default=None)
    return None if found is None or (not upper_bound and any(floor < found[0] for floor in floors)) else found


def never_congested(run: Run) -> bool:
    """Whether the batch size that reaches the run's rho_max never congested: its rho_max is then a lower bound."""
    _, n = top_rate(run)
    return n is not None and env.first_bounded(run.points).get(n) is None


def _latency_change(wholes: list[Run], whole: Run, split: Run) -> str:
    """The split's best latency at each of its rates against the whole model's best at the same rate, over its
    runs (each of their batch sizes interpolated between its measured rates where the grids differ); `whole`: the
    run of the whole model's saturation."""
    mine = env.envelope(split.points)
    whole_top, _ = top_rate(whole)
    lower, higher, beyond, gains, between, compared, within = [], [], [], [], False, 0, 0
    for row in mine.itertuples():
        if row.rate_qps > whole_top:
            if not never_congested(whole):  # beyond a known saturation; else: simply not measured there
                beyond.append(row.rate_qps)
            continue
        within += 1
        known = [found for w in wholes if (found := least_latency_at(w.points, row.rate_qps)) is not None]
        if not known:
            continue
        (reference, on_line), compared = min(known), compared + 1
        ratio = row.mean_max_latency_ms / reference - 1
        between |= abs(ratio) > LATENCY_CHANGE and on_line  # a claim resting on a line between measured rates
        if ratio < -LATENCY_CHANGE:
            lower.append(row.rate_qps)
            gains.append(-ratio)
        elif ratio > LATENCY_CHANGE:
            higher.append(row.rate_qps)
    words = []
    if lower:
        by = f"by up to {max(gains):.0%}" if len(gains) > 1 else f"by {gains[0]:.0%}"
        words.append(f"It lowers the worst-case latency at {_rates(lower)} ({by})")
    if higher:
        words.append(f"it raises it at {_rates(higher)}" if words else
                     f"It raises the worst-case latency at {_rates(higher)}")
    if beyond:
        words.append(f"{'it' if words else 'It'} alone serves {_rates(beyond)}, beyond the whole model's "
                     "saturation")
    if not words and not compared:
        return "No rate of the split's lies where the whole model's latency is known closely enough to compare them."
    partly = (f" Compared at {compared} of the split's {within} rates the whole model served: at the others its "
              "latency is not known closely enough (give both sweeps the same --rate)." if compared < within else "")
    if not words:
        return (f"Its worst-case latency is within {LATENCY_CHANGE:.0%} of the whole model's at every rate "
                + (f"compared.{partly}" if partly else "both served."))
    return "; ".join(words) + (" (the whole model's latencies interpolated between its measured rates)."
                               if between else ".") + partly


def _rates(values: list[float]) -> str:
    if len(values) == 1:
        return f"{qps(values[0])} q/s"
    if len(values) <= 3:
        return ", ".join(qps(v) for v in values[:-1]) + f" and {qps(values[-1])} q/s"
    return f"{len(values)} rates from {qps(values[0])} to {qps(values[-1])} q/s"


def pairs(runs: list[Run]) -> list[tuple[list[Run], Run]]:
    """(wholes, split): each split with the whole model's runs measured as it was: the same source model, system
    and engine, the same arrivals and queue delay, the same machine (this host and CPU for real runs; a fleet's
    kind); those on the split's own workers where there are some, else every such run (compared by their best at
    each rate: the first alone made the verdict hang on the order the runs were given)."""
    found = []
    for split in (r for r in runs if int(r.meta.parts) > 1):
        wholes = [r for r in runs if int(r.meta.parts) == 1 and r.model and r.model == split.model
                  and _conditions(r) == _conditions(split)]
        same = [r for r in wholes if r.meta.workers == split.meta.workers]
        if same or wholes:
            found.append((same or wholes, split))
    return found


def _conditions(run: Run) -> tuple:
    """What two runs must share for their latencies to compare: a split measured under Poisson arrivals against a
    whole model under fixed ones, or on another host, was called a gain of splitting."""
    meta = run.meta
    machine = (meta.host, meta.cpu) if meta.engine == "real" else ()
    return (meta.system, meta.engine, meta.arrival, meta.max_queue_delay_ms, _machine_kind(run), *machine)


def _machine_kind(run: Run) -> str:
    """A fleet run's machine kind ('' for a run of this machine)."""
    where = run.meta.extra.get("fleet")
    return str(where.get("kind", "")) if isinstance(where, dict) else ""


def verdict(runs: list[Run], first=lambda run: []) -> list[str]:
    """The report's opening: each run's sentences (prefixed by its label when there are several), then each
    whole-vs-split pair's. `first(run)`: sentences said before each run's own (its answer to --slo)."""
    from ..results.read import legend_labels

    if len(runs) == 1:
        return first(runs[0]) + run_verdict(runs[0])
    labels = dict(zip((id(r) for r in runs), legend_labels(runs)))
    lines = [f"{labels[id(r)]}: " + " ".join(first(r) + run_verdict(r)) for r in runs]
    return lines + [split_verdict(wholes, split) for wholes, split in pairs(runs)]
