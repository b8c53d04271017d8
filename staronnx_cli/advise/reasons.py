"""Why advise answers what it answers: at each rate, the best each worker layout could do (the choice read as a
comparison: the GPU alone against the GPU beside CPU cores, one group of cores against several), and the task
times per batch the chosen setup rests on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis.verdict import ms, qps
from .confirm import candidate_of
from .search import SearchResult, eligible
from .space import Candidate, Target, worker_kinds, workers_in


@dataclass
class LayoutBest:
    """One worker layout at one rate: its best candidate and predicted latency, or why it has none."""

    layout: str
    candidate: Candidate | None
    ms: float | None
    capacity_qps: float | None  # the best candidate's capacity bound, or the layout's largest
    fate: str = ""  # why there is no candidate ("none keeps up: ..." when none can serve the rate)

    @property
    def keeps_up(self) -> bool:
        return self.candidate is not None or not self.fate.startswith("none keeps up")


def layout_bests(result: SearchResult, rate: float, targets: list[Target], chosen: dict | None,
                 bound_ms: float | None = None) -> list[LayoutBest]:
    """Every layout searched, in the search's order: the chosen candidate on its own layout (it may have been
    chosen by what was measured), elsewhere the least predicted latency within the bound."""
    mine = [r for r in result.rows if r["rate_qps"] == rate]
    answer = chosen.get("candidate") if chosen else None
    out = []
    for layout in dict.fromkeys(r["layout"] for r in result.rows):  # the same order at every rate
        rows = [r for r in mine if r["layout"] == layout]
        if not rows:
            continue
        capacity = max((r["capacity_bound_qps"] for r in rows if _number(r["capacity_bound_qps"])), default=None)
        served = [r for r in rows if r["status"] == "simulated" and _eligible(r)]
        within = [r for r in served if bound_ms is None or r["predicted_latency_ms"] <= bound_ms]
        mine_chosen = [r for r in served if answer is not None and r["candidate"] == answer.name]
        best = mine_chosen[0] if mine_chosen else \
            min(within, key=lambda r: (r["predicted_latency_ms"], r["batch_size"]), default=None)
        if best is not None:
            out.append(LayoutBest(layout, candidate_of(best, targets), best["predicted_latency_ms"],
                                  best["capacity_bound_qps"] if _number(best["capacity_bound_qps"]) else None))
            continue
        if served:  # all above the bound
            least = min(r["predicted_latency_ms"] for r in served)
            fate = f"none within the {bound_ms:g} ms bound (its least: {ms(least)} ms)"
        else:
            fate = _fate(rows, capacity, rate)
        out.append(LayoutBest(layout, None, None, capacity, fate))
    return out


def _eligible(row: dict) -> bool:
    return _number(row["predicted_latency_ms"]) and eligible(
        {"congested": row["predicted_congested"], "reason": row["reason"],
         "mean_max_latency_ms": row["predicted_latency_ms"]})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _fate(rows: list[dict], capacity: float | None, rate: float) -> str:
    """Why a layout has no candidate at a rate, from its rows: the strongest reason first."""
    if capacity is not None and capacity < rate:
        return f"none keeps up: at most {qps(capacity)} q/s at any batch size searched"
    statuses = [r["status"] for r in rows]
    behind = next((s for s in statuses if "formation" in s or "lower bound" in s), None)
    if behind is not None:  # whatever its smaller batch sizes did, its larger ones could not win
        lead = "cannot meet the bound: " if behind.endswith("ms bound") else "cannot enter the 3 best: "
        return lead + behind.replace("pruned: ", "")
    if any("no task times" in s for s in statuses):
        return "not simulated: no task times"
    simulated = [r for r in rows if r["status"] == "simulated"]
    if any(not r["predicted_congested"] for r in simulated):  # uncongested but not eligible: a lower bound only
        return "not settled: its queue was still filling when its batches ran out (raise --batches)"
    if simulated:
        return "none keeps up (congested in simulation)"
    return statuses[0].replace("pruned: ", "not simulated: ")


def layout_rows(bests: list[LayoutBest], chosen: dict | None) -> list[dict]:
    """The table: one row per layout."""
    base = chosen.get("predicted_ms") if chosen and chosen.get("setup") else None
    rows = []
    for b in bests:
        gap = ""
        if chosen is not None and b.candidate is not None and b.ms is not None and base is not None:
            gap = ("the answer" if b.candidate == chosen["candidate"] else
                   "the same" if ms(b.ms) == ms(base) else f"{'+' if b.ms > base else '-'}{ms(abs(b.ms - base))} ms")
        rows.append({"workers": b.layout, "its best": _words(b.candidate) if b.candidate else b.fate,
                     "predicted ms": "" if b.ms is None else f"{b.ms:.2f}", "vs the answer": gap,
                     "its capacity bound q/s": "" if b.capacity_qps is None else qps(b.capacity_qps)})
    return rows


def _words(c: Candidate) -> str:
    return f"{c.what}, --policy {c.policy}, N={c.batch_size}"


def comparison(bests: list[LayoutBest], chosen: dict) -> str:
    """One sentence: the answer against the best other layout, or what kept the other layouts out."""
    answer, rate = chosen["candidate"], chosen["rate_qps"]
    others = [b for b in bests if b.layout != answer.layout]
    served = [(b.ms, b.candidate, b) for b in others if b.candidate is not None and b.ms is not None]
    if served:
        theirs, candidate, runner = min(served, key=lambda s: s[0])
        gap = theirs - chosen["predicted_ms"]
        said = f"The best other layout, {runner.layout} ({_words(candidate)}), is predicted at "
        if ms(theirs) == ms(chosen["predicted_ms"]):  # the same as printed
            more = workers_in(runner.layout) > workers_in(answer.layout)
            top, other = chosen.get("rho_max_predicted"), chosen.get("headroom_over_qps")
            extra = (f"; of the candidates predicted alike, the answer has the most headroom: it saturates at about "
                     f"{qps(top)} q/s, the next at {qps(other)} q/s (simulated)." if top and other is not None else
                     ": its extra workers add nothing at this rate." if more else ".")
            return said + f"the same {ms(theirs)} ms" + extra
        said += f"{ms(theirs)} ms: {ms(abs(gap))} ms {'more' if gap > 0 else 'less'} than the answer."
        if gap < 0 and chosen.get("by") == "headroom" and chosen.get("bound_qps") and not chosen.get(
                "congested_for_real") and not chosen.get("over_bound"):  # not said beside a measured miss
            return said + (f" The answer stays within the {chosen['bound_ms']:g} ms bound up to about "
                           f"{qps(chosen['bound_qps'])} q/s: the most headroom of its top candidates (simulated).")
        return said + (" The answer is the best of those measured here." if gap < 0 and chosen.get("confirmed")
                       else "")
    if not any(b.keeps_up for b in others):
        return f"{answer.layout} is the only layout that keeps up with {qps(rate)} q/s in simulation."
    return "No other layout has an answer here: " + "; ".join(f"{b.layout}: {b.fate}" for b in others) + "."


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


def compare_layouts(result: SearchResult, recs: list[dict], targets: list[Target], bound_ms: float | None) -> None:
    """Each recommendation gains "layouts" (its rate's LayoutBest list) and, where it has a setup,
    "comparison": the sentence against the best other layout."""
    for rec in recs:
        rec["layouts"] = layout_bests(result, rec["rate_qps"], targets, rec, bound_ms)
        if rec.get("setup") is not None:
            rec["comparison"] = comparison(rec["layouts"], rec)


def markdown_lines(recs: list[dict], times) -> list[str]:
    """The "Why" section of advice.md (after compare_layouts)."""
    from ..plots.tables import markdown

    lines = ["## Why", ""]
    for rec in recs:
        lines += [f"### At {qps(rec['rate_qps'])} q/s", "", "The best of each worker layout, simulated:", "",
                  markdown(layout_rows(rec["layouts"], rec))]
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
