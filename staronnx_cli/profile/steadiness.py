"""Noise in a profile called out: repeated runs that disagree, a profiler that seems to cost less than nothing,
an optimisation level that seems to slow the model down. Each says what it means and what to do."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ..metrics.spread import SPREAD, relative_spread

NEGATIVE_OVERHEAD = -0.02  # profiled runs faster than unprofiled ones by more than this: noise, not a gain
SLOWER_LEVEL_ALL = 1.15  # level all this much slower than the profiled level: the runs were disturbed
STALLED = 3.0  # a node whose mean is this many times its median had a run far slower than the others
STALLED_SHARE = 0.05  # said when those nodes' means exceed their medians by this share of the model's time


def profile_warnings(batch_size: int, run_us: Sequence[float], plain_us: Sequence[float] | None = None,
                     full_us: Sequence[float] | None = None, level: str = "basic") -> list[str]:
    """Warnings for one batch size's profile: end-to-end runs (profiled), and if timed, unprofiled runs at the
    profiled level and at level all."""
    warnings = []
    spread = relative_spread(run_us)
    if spread is not None and spread > SPREAD:
        warnings.append(f"batch {batch_size}: the {len(run_us)} profiled runs spread {spread:.0%} (interquartile "
                        f"range over median, above {SPREAD:.0%}): node costs are uncertain; profile again on a "
                        "quiet machine, or with more --runs")
    if plain_us and full_us:
        profiled, plain, full = map(statistics.median, (run_us, plain_us, full_us))  # a stalled run moves none
        if profiled / plain - 1 < NEGATIVE_OVERHEAD:
            warnings.append(f"batch {batch_size}: runs with the profiler on were {1 - profiled / plain:.1%} faster "
                            "than without it: the machine's noise is larger than the profiler's overhead; profile "
                            "again on a quiet machine")
        if full / plain > SLOWER_LEVEL_ALL:
            warnings.append(f"batch {batch_size}: level all ran at {full / plain:.0%} of level {level}'s time "
                            "(more optimisation should not be slower): those runs were disturbed; profile again "
                            "on a quiet machine")
    return warnings


def stalled_nodes_warning(batch_size: int, rows: Sequence[dict]) -> str:
    """A run of a few nodes stalled (another process took the core): their means, and the profile's share column,
    are off while their medians, which `split` takes for them, are not. '' when no such node weighs."""
    total = sum(r["median_us"] for r in rows) or 1.0
    stalled = sorted((r for r in rows if r["mean_us"] > STALLED * r["median_us"]),
                     key=lambda r: r["median_us"] - r["mean_us"])
    excess = sum(r["mean_us"] - r["median_us"] for r in stalled)
    if not stalled or excess < STALLED_SHARE * total:
        return ""
    worst = stalled[0]
    return (f"batch {batch_size}: {len(stalled)} node(s) had a run far slower than their others (e.g. "
            f"{worst['node']}: mean {worst['mean_us']:.1f} us, median {worst['median_us']:.1f} us): the machine "
            f"stalled; their means overstate the model's time by {excess / total:.0%}. split takes their medians; "
            "profile again on a quiet machine for means and shares to trust")
