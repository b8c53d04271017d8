"""Why advise answers what it answers: at each rate, the best each worker layout could do (the choice read as a
comparison: the GPU alone against the GPU beside CPU cores, one group of cores against several), and the task
times per batch the chosen setup rests on."""

from __future__ import annotations

import math

from .confirm import candidate_of
from .search import SearchResult, eligible
from .space import Target, worker_kinds, workers_in


def layout_rows(result: SearchResult, rate: float, targets: list[Target], chosen: dict | None) -> list[dict]:
    """One row per worker layout at `rate`: its best simulated candidate (least predicted latency) and how far it
    is from the chosen one, or what kept every candidate of that layout out."""
    mine = [r for r in result.rows if r["rate_qps"] == rate]
    base = chosen["predicted_ms"] if chosen and chosen.get("setup") else None
    out = []
    for layout in dict.fromkeys(r["layout"] for r in result.rows):  # the same order at every rate
        rows = [r for r in mine if r["layout"] == layout]
        if not rows:
            continue
        served = [r for r in rows if r["status"] == "simulated" and _eligible(r)]
        capacity = max((r["capacity_bound_qps"] for r in rows if _number(r["capacity_bound_qps"])), default=None)
        if served:
            best = min(served, key=lambda r: (r["predicted_latency_ms"], r["batch_size"]))
            c = candidate_of(best, targets)
            ms = best["predicted_latency_ms"]
            gap = "" if base is None else ("the answer" if chosen["candidate"] == c else
                                           "the same" if abs(ms - base) < 0.05 else f"{ms - base:+.1f} ms")
            out.append({"workers": layout, "its best": f"{c.what}, --policy {c.policy}, N={c.batch_size}",
                        "predicted ms": f"{ms:.2f}", "vs the answer": gap,
                        "its capacity bound q/s": _qps(best["capacity_bound_qps"])})
            continue
        out.append({"workers": layout, "its best": _fate(rows, capacity, rate), "predicted ms": "",
                    "vs the answer": "", "its capacity bound q/s": _qps(capacity)})
    return out


def _qps(value) -> str:
    return f"{value:.4g}" if _number(value) else ""


def _eligible(row: dict) -> bool:
    return eligible({"congested": row["predicted_congested"], "reason": row["reason"],
                     "mean_max_latency_ms": row["predicted_latency_ms"]})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fate(rows: list[dict], capacity: float | None, rate: float) -> str:
    """Why a layout has no answer at a rate, from its rows."""
    if capacity is not None and capacity < rate:
        return f"none keeps up: at most {capacity:.4g} q/s at any batch size searched"
    if any(r["status"] == "simulated" for r in rows):
        return "none keeps up (congested in simulation)"
    kept_out = next((r["status"] for r in rows if "capacity" not in r["status"]), rows[0]["status"])
    return kept_out.replace("pruned: ", "not simulated: ")


def comparison(rows: list[dict], chosen: dict) -> str:
    """One sentence: how far ahead of the best other layout the answer is, or that no other layout keeps up."""
    layout, rate = chosen["candidate"].layout, chosen["rate_qps"]
    others = [r for r in rows if r["workers"] != layout and r["predicted ms"]]
    if not others:
        behind = [r["workers"] for r in rows if r["workers"] != layout and "none keeps up" not in r["its best"]]
        if not behind:
            return f"{layout} is the only layout that keeps up with {rate:g} q/s in simulation."
        return (f"No other layout comes closer: {', '.join(behind)} could not enter the 3 best at {rate:g} q/s by "
                "its bounds alone, so it was not simulated there.")
    runner = min(others, key=lambda r: float(r["predicted ms"]))
    gap = float(runner["predicted ms"]) - chosen["predicted_ms"]
    said = f"The best other layout, {runner['workers']} ({runner['its best']}), is predicted at "
    if abs(gap) < 0.05:
        more = workers_in(runner["workers"]) > workers_in(layout)
        return said + f"the same {runner['predicted ms']} ms" + (
            ": its extra workers add nothing at this rate." if more else ".")
    said += f"{runner['predicted ms']} ms: {abs(gap):.1f} ms {'more' if gap > 0 else 'less'} than the answer."
    if gap < 0 and chosen.get("confirmed"):
        said += " The answer is the best of those measured here."
    return said


def time_rows(part_s: dict[str, list[float | None]], layout: str) -> list[dict]:
    """The task time of each part on each kind of worker of the layout, in ms per batch."""
    kinds = list(dict.fromkeys(worker_kinds(layout)))
    parts = max((len(v) for v in part_s.values()), default=0)
    rows = []
    for p in range(parts):
        row = {"part": "whole model" if parts == 1 else str(p)}
        for kind in kinds:
            value = (part_s.get(kind) or [None] * parts)[p]
            row[f"{kind} ms"] = "" if value is None else f"{1000 * value:.3f}"
        rows.append(row)
    return rows


def compare_layouts(result: SearchResult, recs: list[dict], targets: list[Target]) -> None:
    """Each answered rate's recommendation gains "comparison": the sentence against the best other layout."""
    for rec in recs:
        if rec.get("setup") is not None:
            rec["comparison"] = comparison(layout_rows(result, rec["rate_qps"], targets, rec), rec)


def markdown_lines(result: SearchResult, recs: list[dict], targets: list[Target], times) -> list[str]:
    """The "Why" section of advice.md."""
    from ..plots.tables import markdown

    lines = ["## Why", ""]
    for rec in recs:
        rate = rec["rate_qps"]
        rows = layout_rows(result, rate, targets, rec)
        lines += [f"### At {rate:g} q/s", "", "The best of each worker layout, simulated:", "", markdown(rows)]
        if rec.get("setup") is None:
            continue
        c = rec["candidate"]
        lines += [rec["comparison"], ""]
        part_s = _part_s(times, c.target.key, c.batch_size)
        if part_s:
            lines += [f"The task times it rests on (per batch of {c.batch_size}):", "",
                      markdown(time_rows(part_s, c.layout))]
    return lines


def _part_s(times, key: str, n: int) -> dict:
    try:
        return times.part_s(key, n)
    except (OSError, KeyError, ValueError):  # a host's performance models gone since the search: no table
        return {}
