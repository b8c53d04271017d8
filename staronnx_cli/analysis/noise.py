"""Noise called out (hyperfine-style): what in a run's files says its figures may not be the machine's, each
warning naming the cause and the fix. Computed from the exported files only, so sweep, report and --json agree."""

from __future__ import annotations

import pandas as pd

from ..hostload import busy_warnings
from ..metrics.spread import SPREAD
from ..results.read import Run
from ..results.schema import DRAINING, RETRIED, SLOWED
from . import envelope as env

BELOW_IDEAL = 0.90  # measured latency below this share of the ideal: the ideal's S(N) came from a slow spell
LATE_RELEASE_US = 1000.0  # p99 lateness of releases beyond which the load generator itself was starved


def noise_warnings(run: Run) -> list[str]:
    """Every warning for one run, most telling first."""
    return [*busy_warnings(run.meta.machine_load), *_spread_warnings(run), *_unsettled(run), *_below_ideal(run),
            *_above_capacity(run), *_late_releases(run), *_short_served(run), *_noted_warnings(run)]


def _unsettled(run: Run) -> list[str]:
    hits = run.points[env.unsettled(run.points)]
    if hits.empty:
        return []
    where = ", ".join(f"N={int(r.batch_size)} at {r.rate_qps:g} q/s" for r in hits.head(3).itertuples())
    return [f"{len(hits)} point(s) did not settle ({where}): their latency still rose after every extension, so "
            "it is a lower bound; they are left out of the best batch sizes and rho_max: sweep them again with more "
            "--batches"]


def _spread_warnings(run: Run) -> list[str]:
    wide = [c for c in run.meta.calibration if (c.get("spread") or 0) > SPREAD]
    if not wide:
        return []
    worst = max(wide, key=lambda c: c["spread"])
    which = ", ".join(f"N={c['batch_size']} on {c['kind']} {c['spread']:.0%}" for c in wide[:4])
    more = f" and {len(wide) - 4} more" if len(wide) > 4 else ""
    return [f"S(N) was measured unsteadily ({which}{more}; interquartile range over median of "
            f"{worst['runs']} runs, above {SPREAD:.0%}): the ideal and the capacity rest on it; sweep again on "
            "a quiet machine"]


def _below_ideal(run: Run) -> list[str]:
    """A batch below the ideal of one worker per batch means a slow S(N) spell, except in a branch plan, whose
    parts run on several workers at once (its ideal is that one worker's: an upper bound, not a floor)."""
    points = env.usable(run.points)
    if "latency_over_ideal" not in points or run.meta.split_method == "branches":
        return []
    ratio = pd.to_numeric(points["latency_over_ideal"], errors="coerce")
    low = points[ratio < BELOW_IDEAL]
    if low.empty:
        return []
    worst = low.loc[ratio[low.index].idxmin()]
    head = (f"{len(low)} point(s) ran faster than their ideal (lowest: N={int(worst.batch_size)} at "
            f"{worst.rate_qps:g} q/s, {float(worst.latency_over_ideal):.2f} x): ")
    if run.meta.engine == "sim":  # no slow spell in a simulation: its noise (--sim-noise) drew short tasks
        return [head + "the simulated task times (--sim-noise) drew short ones; more --batches average them out"]
    return [head + "S(N) was measured in a slow spell, so ideals and capacities are too pessimistic: sweep again on "
            "a quiet machine"]


def _above_capacity(run: Run) -> list[str]:
    """A batch size that sustained more than its capacity (N x sum 1 / S_w(N), S(N) measured alone before the
    points) by more than the grid resolves: the workers ran faster in the points than when S(N) was measured."""
    if "capacity_qps" not in run.points:
        return []
    highest = env.rho_max(run.points)
    capacity = pd.to_numeric(run.points["capacity_qps"], errors="coerce").groupby(run.points["batch_size"]).median()
    over = [(n, rho, capacity[n]) for n, rho in highest.items()
            if rho is not None and n in capacity and capacity[n] > 0 and rho > capacity[n] * (1 + env.PRECISION)]
    if not over:
        return []
    n, rho, cap = max(over, key=lambda o: o[1] / o[2])
    head = (f"{len(over)} batch size(s) sustained more than their capacity (most: N={n} at {rho:g} q/s, "
            f"{rho / cap:.2f} x its {cap:.1f} q/s): ")
    if run.meta.engine == "sim":  # the simulated times are the platform's: the capacity is exact
        return [head + f"its {run.meta.batches} measured batches per point were too few to show a small lost load "
                "(the simulated capacity is exact): sweep with more --batches near it"]
    return [head + "S(N) was measured in a slow spell, so ideals and capacities are too pessimistic: sweep again "
            "on a quiet machine"]


SHORT_SERVED = 0.9  # an uncongested point of fixed arrivals whose served rate reads below this share of the offered


def _short_served(run: Run) -> list[str]:
    """Uncongested points whose `achieved_qps` (first to last batch end) reads well below the rate offered: one late
    batch at the window's end stretched it (a point at 12,300 q/s read 7,741 served), so their figures rest on a
    window that ended in a stall. Fixed arrivals only: random ones offer their rate over the window, not its ends."""
    if "achieved_qps" not in run.points or run.meta.arrival != "fixed" or run.meta.max_queue_delay_ms is not None:
        return []
    points = env.usable(run.points)
    served = pd.to_numeric(points["achieved_qps"], errors="coerce")
    short = points[served < SHORT_SERVED * points.rate_qps]
    if short.empty:
        return []
    worst = short.loc[(served[short.index] / short.rate_qps).idxmin()]
    return [f"{len(short)} uncongested point(s) read less than {SHORT_SERVED:.0%} of their rate served (least: N="
            f"{int(worst.batch_size)} at {worst.rate_qps:g} q/s, {float(worst.achieved_qps):g} served): their "
            "windows ended in a stall (one late batch stretches the span served q/s is counted over); sweep them "
            "again, or with more --batches"]


def _late_releases(run: Run) -> list[str]:
    if "release_lateness_p99_us" not in run.points:
        return []
    late = pd.to_numeric(run.points["release_lateness_p99_us"], errors="coerce")
    if not (late > LATE_RELEASE_US).any():
        return []
    worst = run.points.loc[late.idxmax()]
    return [f"queries were released late at {int((late > LATE_RELEASE_US).sum())} point(s) (p99 up to "
            f"{late.max() / 1000:.1f} ms, N={int(worst.batch_size)} at {worst.rate_qps:g} q/s): the load "
            "generator's thread was starved of CPU; leave it a core (fewer worker cores) or stop other work"]


NOTED = [  # a phrase in some points' reasons -> the warning ({hits}: how many, {where}: the first three)
    ("a disturbance", "latency rose while the workers had time to spare at {hits} point(s) ({where}): something else "
     "slowed the machine then; their latencies are pessimistic: sweep again on a quiet machine"),
    (DRAINING, "latency was still falling at {hits} point(s) ({where}): a backlog left by a slowdown was draining, so "
     "their latencies are upper bounds: sweep again on a quiet machine, or with more --batches"),
    (SLOWED, "{hits} point(s) were congested within their capacity while their tasks ran well above the S(N) measured "
     "alone ({where}): something slowed the workers then (other work on the machine, or workers sharing a device, "
     "memory and caches), so rho_max may lie higher: sweep those rates again on a quiet machine (--batch N --rate "
     "R); if they congest again, the workers slow each other and rho_max stands"),
    (RETRIED, "{hits} point(s) congested at their first try well within their capacity and were measured again "
     "({where}): the machine stalled or slowed then, and the second try's figures are the ones kept; on a quiet "
     "machine this does not happen"),
]


def _noted_warnings(run: Run) -> list[str]:
    """The warnings of NOTED whose phrase some points' reasons hold."""
    said = []
    for phrase, text in NOTED:
        hits, where = _noted(run, phrase)
        if hits:
            said.append(text.format(hits=hits, where=where))
    return said


def _noted(run: Run, phrase: str) -> tuple[int, str]:
    """How many points' reasons hold `phrase`, and the first three of them in words."""
    if "reason" not in run.points:
        return 0, ""
    reasons = run.points["reason"].fillna("").astype(str)
    if phrase != RETRIED:  # a second try's reason quotes the first's: only its own words count
        reasons = reasons.str.split(RETRIED, regex=False).str[0]
    hits = run.points[reasons.str.contains(phrase, regex=False)]
    named = ", ".join(f"N={int(r.batch_size)} at {r.rate_qps:g} q/s" for r in hits.head(3).itertuples())
    return len(hits), named + (f" and {len(hits) - 3} more" if len(hits) > 3 else "")
