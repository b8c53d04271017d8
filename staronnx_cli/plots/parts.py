"""A plan's parts as a schedule with a worker per part: each part as early as its inputs allow (its time from
plan.json, on the plan's device), one lane per stream, an arrow per dependency. A chain is a staircase; a branch
plan shows which parts can overlap, and its critical path against the work."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402

from ..split.plan import Plan  # noqa: E402
from . import backend  # noqa: F401 - Agg, before pyplot

LANE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def earliest_schedule(plan: Plan) -> tuple[list[float], list[float], list[list[int]]]:
    """(start us, time us, deps) per part: each starts when the last part it reads from ends."""
    deps: list[list[int]] = [sorted({e.source for e in plan.edges if e.target == p.index and e.source >= 0})
                             for p in plan.parts]
    times = [float(p.estimated_us.get(plan.device, 0.0)) for p in plan.parts]
    start: list[float] = []
    for ds in deps:
        start.append(max((start[d] + times[d] for d in ds), default=0.0))
    return start, times, deps


def _lanes(plan: Plan, start: list[float], times: list[float]) -> list[int]:
    """A part's lane: its stream's, or the next free one where two parts of a stream overlap."""
    groups = plan.dag.get("groups") or [0] * len(plan.parts)
    busy: dict[int, float] = {}
    lanes = []
    for p, group in enumerate(groups):
        lane = group
        while busy.get(lane, 0.0) > start[p] + 1e-9:
            lane += 1
        busy[lane] = start[p] + times[p]
        lanes.append(lane)
    return lanes


def parts_figure(plan: Plan, title: str):
    start, times, deps = earliest_schedule(plan)
    lanes = _lanes(plan, start, times)
    fig, ax = plt.subplots(figsize=(11, 1.6 + 0.7 * (max(lanes) + 1)))
    for p, (s, t, lane) in enumerate(zip(start, times, lanes)):
        ax.barh(lane, t, left=s, height=0.6, color=LANE_COLOURS[lane % len(LANE_COLOURS)], edgecolor="black",
                linewidth=0.5)
        ax.text(s + t / 2, lane, str(p), ha="center", va="center", fontsize=7)
    for p, ds in enumerate(deps):
        for d in ds:
            ax.annotate("", xy=(start[p], lanes[p]), xytext=(start[d] + times[d], lanes[d]),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.6})
    end, work = max((s + t for s, t in zip(start, times)), default=0.0), sum(times)
    ax.set_yticks(range(max(lanes) + 1))
    ax.set_yticklabels([f"stream {lane}" for lane in range(max(lanes) + 1)])
    ax.invert_yaxis()
    ax.set_xlabel(f"us on {plan.device} at batch {plan.batch_size} (each part as soon as its inputs are ready)")
    ax.set_title(f"{title}\n{len(plan.parts)} parts ({plan.method}): critical path {end:,.0f} us of {work:,.0f} us "
                 f"of work (parallelism {work / end if end else 1:.2f}x)", fontsize=10)
    fig.tight_layout()
    return fig
