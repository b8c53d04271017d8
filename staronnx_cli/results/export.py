"""A run's points as perf_analyzer writes them (`perf_analyzer --request-rate-range ... -f perf.csv`), so that the
spreadsheets, scripts and Model Analyzer-style plots built on those files read staronnx's results too.

One file per batch size (a mix: per model and batch size), as one perf_analyzer run measures one model
configuration; its rows are the points judged uncongested without errors (perf_analyzer reports only the rates it
could hold), by increasing Inferences/Second, times in microseconds. What staronnx measures in-process maps to
perf_analyzer's columns as: Server Queue = fill + wait (batch formation and waiting for a worker, which Triton's
queue holds too), Server Compute Infer = run; the client and network columns are 0 (no network is crossed)."""

from __future__ import annotations

import math
import re

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


def perf_analyzer_tables(points: pd.DataFrame) -> dict[str, list[list]]:
    """A file's name part -> perf_analyzer's rows of its held points: 'N2' for a run of one model; for a mix,
    'cnn.N2.cnn2_transformer1' (the model, its batch size, and the combination it ran in: each model's rows of
    two combinations are two configurations)."""
    held = points[~flags(points["congested"]) & points["errors"].fillna("").astype(str).str.strip().eq("")]
    mix = "model" in points and points["model"].fillna("").astype(str).nunique() > 1
    blank = pd.Series("", index=held.index)
    models = held["model"].fillna("").astype(str) if mix else blank
    combos = held["mix"].fillna("").astype(str) if mix and "mix" in held else blank
    tables: dict[str, list[list]] = {}
    for (model, n, combo), group in held.groupby([models, held["batch_size"].astype(int), combos], sort=True):
        label = re.sub(r"[^A-Za-z0-9_.-]+", "", str(combo).replace(" ", "_"))
        name = ".".join(x for x in (str(model), f"N{n}", label) if x)
        tables[name] = [_row(p) for p in group.sort_values("achieved_qps").itertuples()]
    return tables


def table_text(rows: list[list]) -> str:
    return "\n".join(",".join(map(str, line)) for line in [HEADER, *rows]) + "\n"
