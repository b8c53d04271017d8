"""A latency objective (`--slo p99<=5`), as Model Analyzer's constraints and perf_analyzer's --latency-threshold
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
from .verdict import ms, qps

METRICS = {"mean-max": ("mean_max_latency_ms", "worst-case latency"), "p50": ("p50_latency_ms", "p50 latency"),
           "p90": ("p90_latency_ms", "p90 latency"), "p95": ("p95_latency_ms", "p95 latency"),
           "p99": ("p99_latency_ms", "p99 latency"), "max": ("max_latency_ms", "max latency")}
FEW_QUERIES = 100  # a p99 of fewer queries is close to their maximum: said beside the answer
_SLO = re.compile(r"^\s*(?:([a-z0-9-]+)\s*<=?\s*)?([0-9.eE+-]+)\s*(ms)?\s*$")


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
    if metric not in METRICS or not math.isfinite(bound) or bound <= 0:
        raise UserError(f"--slo '{text}': write METRIC<=MS with METRIC one of {', '.join(METRICS)}, e.g. --slo "
                        "p99<=5 (a bare number is the worst-case latency, mean-max)")
    return Slo(metric, bound)


def slo_answer(run: Run, slo: Slo) -> dict:
    """The highest measured rate where an uncongested, settled point met `slo`, the batch size that met it best
    there, its figure, and the next rate of the grid above it (where none met it; None: the top of the grid)."""
    points = env.usable(run.points)
    value = pd.to_numeric(points.get(slo.column, pd.Series(dtype=float, index=points.index)), errors="coerce")
    met = points[value <= slo.bound_ms]
    answer = {"slo": slo.words(), "metric": slo.metric, "bound_ms": slo.bound_ms, "rate_qps": None,
              "batch_size": None, "latency_ms": None, "next_rate_qps": None, "few_queries": False, "least_ms": None,
              "least_at": None, "unknown": False}
    if met.empty:
        answer["unknown"] = not points.empty and value.isna().all()  # an older run, without that column
        if value.notna().any():
            least = points.loc[value.idxmin()]
            answer.update(least_ms=float(value.min()), least_at=[int(least.batch_size), float(least.rate_qps)])
        return answer
    top = float(met.rate_qps.max())
    here = met[met.rate_qps == top]
    best = here.loc[value[here.index].idxmin()]
    above = sorted(r for r in pd.to_numeric(run.points.rate_qps, errors="coerce").dropna().unique() if r > top)
    queries = float(best.get("batches", 0) or 0) * float(best.get("mean_queries_per_batch", 1) or 1)
    answer.update(rate_qps=top, batch_size=int(best.batch_size), latency_ms=float(value[best.name]),
                  next_rate_qps=float(above[0]) if above else None,
                  few_queries=slo.metric == "p99" and queries < FEW_QUERIES)
    return answer


def slo_sentence(answer: dict) -> str:
    """The answer in words, first of the verdict."""
    what = answer["slo"]
    if answer["rate_qps"] is None:
        if answer["least_ms"] is not None:
            n, rate = answer["least_at"]
            return (f"No measured point meets {what}: the least was {ms(answer['least_ms'])} ms (N={n} at "
                    f"{qps(rate)} q/s); measure lower rates or smaller batch sizes, or relax it.")
        if answer.get("unknown"):
            return f"This run has no {what.split(' <=')[0]} figures (an older run): sweep it again to hold it to " \
                f"{what}."
        return f"No uncongested point to hold against {what}: sweep lower rates."
    name = what.split(" <=")[0]
    few = f", of fewer than {FEW_QUERIES} queries: close to their maximum; more --batches" \
        if answer["few_queries"] else ""
    beyond = (f"; at {qps(answer['next_rate_qps'])} q/s, the next rate of the grid, no batch size met it"
              if answer["next_rate_qps"] is not None else
              " (the top of the grid: it may hold higher; sweep higher rates to find where it stops)")
    return (f"Within {what}: up to {qps(answer['rate_qps'])} q/s, with N={answer['batch_size']} ({name} "
            f"{ms(answer['latency_ms'])} ms there{few}){beyond}.")
