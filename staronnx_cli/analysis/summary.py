"""A run's answer as plain numbers: the best batch size at each rate, saturation per batch size, the verdict and
the noise warnings. Tables (terminal, Markdown) format these; `sweep --json` prints them as they are."""

from __future__ import annotations

import math

import pandas as pd

from ..results.read import Run
from . import envelope as env
from .noise import noise_warnings
from .slo import Slo, slo_answer, slo_sentence
from .verdict import never_congested, run_verdict, top_rate

SUMMARY_VERSION = 1


def finite_number(value) -> float | None:
    """A cell of a run's files as a number: None where it is empty, not one, or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def best_points(run: Run) -> list[dict]:
    """For each rate with an uncongested point: N*, its worst-case latency (mean and std over batches), the
    ideal (N-1)/rho + S(N) at that point, measured/ideal, (as perf_analyzer shows them) the queries' p99
    latency and the rate served, and where the latency went (filling, waiting, running; None for older runs)."""
    ideals = run.points.set_index(["rate_qps", "batch_size"]).get("ideal_latency_ms")
    rows = []
    for b in env.envelope(run.points).itertuples():
        ideal = None if ideals is None else finite_number(ideals.get((b.rate_qps, b.batch_size)))
        rows.append({"rate_qps": float(b.rate_qps), "batch_size": int(b.batch_size),
                     "mean_max_latency_ms": float(b.mean_max_latency_ms),
                     "std_max_latency_ms": finite_number(b.std_max_latency_ms), "ideal_latency_ms": ideal,
                     "latency_over_ideal": round(b.mean_max_latency_ms / ideal, 4) if ideal else None,
                     "p99_latency_ms": finite_number(getattr(b, "p99_latency_ms", None)),
                     "achieved_qps": finite_number(getattr(b, "achieved_qps", None)),
                     **{key: finite_number(getattr(b, key, None)) for key in ("fill_ms", "wait_ms", "run_ms")}})
    return rows


def saturation(run: Run) -> list[dict]:
    """Per batch size: rho_max (None: no uncongested point), the first congested rate (None: beyond the grid),
    S(N) of the fastest worker, and the workers' capacity N * sum(1 / S_w(N)); `failed` when no batch ran."""
    points = run.points
    highest, first_bad = env.rho_max(points), env.first_congested(points)
    workers = len(run.meta.worker_cores)
    rows = []
    for n, group in points.groupby("batch_size"):
        service = pd.to_numeric(group.get("service_ms", pd.Series(dtype=float)), errors="coerce").dropna()
        s_ms = float(service.median()) if len(service) else None
        capacity = pd.to_numeric(group.get("capacity_qps", pd.Series(dtype=float)), errors="coerce").dropna()
        ideal = float(capacity.median()) if len(capacity) else (  # runs before capacity_qps: identical workers
            n * workers * 1000 / s_ms if s_ms and workers else None)
        failed = bool(((group.batches == 0) & ~group.congested.astype(bool)).any()) and highest[int(n)] is None
        rows.append({"batch_size": int(n), "rho_max_qps": highest[int(n)], "first_congested_qps": first_bad[int(n)],
                     "service_ms": s_ms, "capacity_qps": ideal, "failed": failed})
    return rows


def summary(run: Run, slo: Slo | None = None) -> dict:
    """Everything `sweep --json` prints (docs/formats.md documents the keys); `slo`: its answer first (--slo)."""
    top, n = top_rate(run)
    answer = slo_answer(run, slo) if slo is not None else None
    return {"summary_version": SUMMARY_VERSION, "run": str(run.path), "model": run.model_name, "label": run.label,
            "answered": top is not None, "rho_max_qps": top, "rho_max_batch_size": n,
            "rho_max_is_lower_bound": top is not None and never_congested(run),
            "verdict": ([slo_sentence(answer)] if answer else []) + run_verdict(run), "warnings": noise_warnings(run),
            "best": best_points(run), "saturation": saturation(run), "slo": answer}
