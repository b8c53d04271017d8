"""Benchmark: the paper's four zoo models built, run and profiled side by side on this machine.

For each: parameters vs published, build time, whether every compute node gets a cost row, the ratio
sum-of-nodes / end-to-end, the profiler's overhead and the speed of ORT level `all` relative to `basic`.
Usage: python experiments/zoo_profile_bench.py [--models a,b] [--runs 10] [--out results/bench]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import onnx
import pandas as pd
from rich.console import Console
from rich.table import Table

from staronnx_cli.devices import parse_device
from staronnx_cli.profile.profiler import ProfileSettings, profile_model
from staronnx_cli.zoo.builder import parameter_count
from staronnx_cli.zoo.cache import build_cached
from staronnx_cli.zoo.registry import ZOO

PAPER = [name for name, e in ZOO.items() if e.role == "paper"]


def bench_model(name: str, runs: int, warmup: int, device: str) -> dict:
    start = time.perf_counter()
    path, built = build_cached(name)
    build_s = time.perf_counter() - start
    model = onnx.load(str(path))
    result = profile_model(ProfileSettings(path, parse_device(device), [1], runs, warmup)).batches[0]
    covered = {r["node"] for r in result.rows} == {n.name for n in model.graph.node}
    plain = statistics.fmean(result.plain_run_us)
    return {
        "model": name, "parameters": parameter_count(model), "published": ZOO[name].published_params,
        "params_diff_pct": round(100 * (parameter_count(model) / ZOO[name].published_params - 1), 4),
        "build_s": round(build_s, 2) if built else None, "nodes": len(model.graph.node),
        "every_node_has_a_row": covered, "end_to_end_ms": round(result.end_to_end_us / 1000, 3),
        "sum_over_end_to_end": round(result.node_sum_us / result.end_to_end_us, 3),
        "profiler_overhead_pct": round(100 * (result.end_to_end_us / plain - 1), 1),
        "level_all_over_basic": round(statistics.fmean(result.full_opt_run_us) / plain, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PAPER))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console()
    rows = []
    for name in args.models.split(","):
        console.print(f"benchmarking {name} ...")
        rows.append(bench_model(name, args.runs, args.warmup, args.device))
        pd.DataFrame(rows).to_csv(args.out / "zoo_profile.csv", index=False)  # written as measured
    table = Table(title=f"paper models, batch 1, {args.device}, {args.runs} runs")
    table.add_column("")
    for row in rows:
        table.add_column(row["model"], justify="right")
    for key in list(rows[0])[1:]:
        table.add_row(key, *(str(row[key]) for row in rows))
    console.print(table)
    console.print(f"wrote {args.out / 'zoo_profile.csv'}")


if __name__ == "__main__":
    main()
