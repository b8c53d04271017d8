"""A latency objective (`--slo 'p99<=5'`), as Model Analyzer's constraints and perf_analyzer's --latency-threshold
put it: the highest measured rate where some batch size met it, which one, and where none did any more. Read from
a run's files only, so `sweep --slo` and `report --slo` answer alike, for runs of any version."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from ..errors import UserError
from ..results.read import Run
from . import envelope as env
from .verdict import every_point_failed, ms, qps

METRICS = {"mean-max": ("mean_max_latency_ms", "worst-case latency"), "p50": ("p50_latency_ms", "p50 latency"),
           "p90": ("p90_latency_ms", "p90 latency"), "p95": ("p95_latency_ms", "p95 latency"),
           "p99": ("p99_latency_ms", "p99 latency"), "max": ("max_latency_ms", "max latency")}
FEW_QUERIES = 100  # a p99 of fewer queries is close to their maximum: said beside the answer
_SLO = re.compile(r"^\s*(?:([a-z0-9-]+)\s*<=\s*)?([0-9.eE+-]+)\s*(ms)?\s*$")


@dataclass(frozen=True)
class Slo:
    metric: str  # a key of METRICS
    bound_ms: float

    @property
    def column(self) -> str:
        return METRICS[self.metric][0]

    def words(self) -> str:
        return f"{METRICS[self.metric][1]} <= {self.bound_ms:g} ms"


def parse_slo(text: str) -> Slo:
    """`p99<=5`, `mean-max<=20ms`, or a bare `20` (the worst-case latency, mean max-latency)."""
    found = _SLO.match(text.lower())
    metric = (found.group(1) or "mean-max") if found else ""
    try:
        bound = float(found.group(2)) if found else math.nan
    except ValueError:
        bound = math.nan
    if found and metric in METRICS and not (math.isfinite(bound) and bound > 0):
        raise UserError(f"--slo '{text}': the bound must be a positive, finite number of ms, e.g. --slo 'p99<=5'")
    if metric not in METRICS or not math.isfinite(bound) or bound <= 0:
        raise UserError(f"--slo '{text}': write METRIC<=MS with METRIC one of {', '.join(METRICS)}, e.g. --slo "
                        "'p99<=5' (quoted: < is the shell's; a bare number is the worst-case latency, mean-max)")
    return Slo(metric, bound)


def slo_answer(run: Run, slo: Slo) -> dict:
    """From the lowest rate where an uncongested, settled point met `slo`, the highest rate up to which it was met at
    every rate of the grid, the batch size that met it best there and its figure; the next rate of the grid (where
    none of the batch sizes measured there met it: `next_sizes`; None: the top of the grid), and any higher rate
    where it was met again (a larger batch fills faster as the rate rises)."""
    points = env.usable(run.points)
    value = pd.to_numeric(points.get(slo.column, pd.Series(dtype=float, index=points.index)), errors="coerce")
    met = points[value <= slo.bound_ms]
    answer = {"slo": slo.words(), "metric": slo.metric, "bound_ms": slo.bound_ms, "rate_qps": None,
              "batch_size": None, "latency_ms": None, "next_rate_qps": None, "next_sizes": None, "again_qps": [],
              "few_queries": False, "least_ms": None, "least_at": None, "unknown": False,
              "failed": every_point_failed(run.points)}
    if met.empty:
        answer["unknown"] = bool(not points.empty and value.isna().all())  # an older run, without that column
        if value.notna().any():
            least = points.loc[value.idxmin()]
            answer.update(least_ms=float(value.min()), least_at=[int(least.batch_size), float(least.rate_qps)])
        return answer
    grid = sorted(float(r) for r in pd.to_numeric(run.points.rate_qps, errors="coerce").dropna().unique())
    met_rates = {float(r) for r in met.rate_qps}
    start = grid.index(min(met_rates))
    end = next((k for k in range(start, len(grid)) if grid[k] not in met_rates), len(grid))
    top = grid[end - 1]
    here = met[met.rate_qps == top]
    best = here.loc[value[here.index].idxmin()]
    queries = float(best.get("batches", 0) or 0) * float(best.get("mean_queries_per_batch", 1) or 1)
    answer.update(rate_qps=top, batch_size=int(best.batch_size), latency_ms=float(value[best.name]),
                  few_queries=slo.metric in ("p95", "p99") and queries < FEW_QUERIES,
                  again_qps=sorted(r for r in met_rates if r > top))
    if end < len(grid):
        there = sorted(int(n) for n in run.points[run.points.rate_qps == grid[end]].batch_size.unique())
        everyone = sorted(int(n) for n in run.points.batch_size.unique())
        answer.update(next_rate_qps=grid[end], next_sizes=None if there == everyone else there)
    return answer


def slo_sentence(answer: dict) -> str:
    """The answer in words, first of the verdict."""
    what = answer["slo"]
    name = what.split(" <=")[0]
    if answer["rate_qps"] is None:
        if answer["least_ms"] is not None:
            n, rate = answer["least_at"]
            return (f"No measured point meets {what}: the least was {ms(answer['least_ms'])} ms (N={n} at "
                    f"{qps(rate)} q/s); measure lower rates or smaller batch sizes, or relax it.")
        if answer["unknown"]:
            return f"This run has no {name} figures (an older run): sweep it again to hold it to {what}."
        if answer["failed"]:
            return f"No point ran (every batch failed): nothing to hold against {what}."
        return f"No uncongested point to hold against {what}: sweep lower rates."
    few = f", of fewer than {FEW_QUERIES} queries: close to their maximum; more --batches" \
        if answer["few_queries"] else ""
    if answer["next_rate_qps"] is None:
        beyond = " (the top of the grid: it may hold higher; sweep higher rates to find where it stops)"
    else:
        who = "no batch size" if answer["next_sizes"] is None else \
            f"not N={', N='.join(map(str, answer['next_sizes']))} (the only ones measured there)"
        beyond = f"; at {qps(answer['next_rate_qps'])} q/s, the next rate measured, {who} met it"
    again = f"; it was met again at {', '.join(qps(r) for r in answer['again_qps'])} q/s" if answer["again_qps"] else ""
    return (f"Within {what}: up to {qps(answer['rate_qps'])} q/s, with N={answer['batch_size']} ({name} "
            f"{ms(answer['latency_ms'])} ms there{few}){beyond}{again}.")
