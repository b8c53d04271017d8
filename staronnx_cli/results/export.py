"""A run's points as perf_analyzer writes them (`perf_analyzer --request-rate-range ... -f perf.csv`), so that the
spreadsheets, scripts and Model Analyzer-style plots built on those files read staronnx's results too.

One file per batch size (a mix: per model and batch size), as one perf_analyzer run measures one model
configuration; its rows are the points judged uncongested without errors (perf_analyzer reports only the rates it
could hold), by increasing Inferences/Second, times in microseconds. What staronnx measures in-process maps to
perf_analyzer's columns as: Server Queue = fill + wait (batch formation and waiting for a worker, which Triton's
queue holds too), Server Compute Infer = run; the client and network columns are 0 (no network is crossed)."""

from __future__ import annotations

import math

import pandas as pd

from .schema import flags

HEADER = ["Request Rate", "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
          "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv", "p50 latency",
          "p90 latency", "p95 latency", "p99 latency"]


def _us(*values_ms) -> int | str:
    """Milliseconds to whole microseconds (a sum of several); '' where one is unknown (a run older than the
    column, as points.csv of schema 4 lacks p90)."""
    numbers = [float(v) if v is not None else math.nan for v in values_ms]
    return int(round(1000 * sum(numbers))) if all(math.isfinite(n) for n in numbers) else ""


def _row(point) -> list:
    def ms(column: str):
        return getattr(point, column, None)

    return [f"{float(point.rate_qps):g}", f"{float(point.achieved_qps):.1f}", 0, 0, _us(ms("fill_ms"), ms("wait_ms")),
            0, _us(ms("run_ms")), 0, 0, _us(ms("p50_latency_ms")), _us(ms("p90_latency_ms")), _us(ms("p95_latency_ms")),
            _us(ms("p99_latency_ms"))]


def perf_analyzer_tables(points: pd.DataFrame) -> dict[tuple[str, int], list[list]]:
    """(model, batch size) -> perf_analyzer's rows of its held points (model '' for a run of one model)."""
    held = points[~flags(points["congested"]) & points["errors"].fillna("").astype(str).str.strip().eq("")]
    mix = "model" in points and points["model"].fillna("").astype(str).nunique() > 1
    models = held["model"].fillna("").astype(str) if mix else pd.Series("", index=held.index)
    tables: dict[tuple[str, int], list[list]] = {}
    for (model, n), group in held.groupby([models, held["batch_size"].astype(int)], sort=True):
        ordered = group.sort_values("achieved_qps")
        tables[(str(model), int(n))] = [_row(p) for p in ordered.itertuples()]
    return tables


def table_text(rows: list[list]) -> str:
    return "\n".join(",".join(map(str, line)) for line in [HEADER, *rows]) + "\n"
