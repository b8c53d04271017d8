"""The paper's Fig. 3 on this machine: one model, the same load, four systems, one figure.

staronnx (the runtime, dmda over cpu:2x1), native (one ORT session on both cores, FIFO plain loop),
roundrobin (the whole model on the first free of two 1-core workers) and triton (a real Triton Inference
Server with its dynamic batcher, when the [triton] extra is installed) sweep the same grid; the envelopes
go on one figure and a table gives each rho_max and the latency at a common rate as ratios.
Usage: python experiments/compare.py [--model googlenet] [--rate 20:200:20] [--out results/compare]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from rich.console import Console

from staronnx_cli.analysis import envelope as env
from staronnx_cli.errors import UserError
from staronnx_cli.plots.figures import compare_figure, save
from staronnx_cli.plots.tables import rich_table
from staronnx_cli.results.read import read_run
from staronnx_cli.sweep.grid import parse_rates
from staronnx_cli.sweep.runner import SweepSettings, run_sweep
from staronnx_cli.zoo.cache import build_cached

SYSTEMS = {  # system -> workers
    "staronnx": "cpu:2x1",
    "native": "cpu:1x2",
    "roundrobin": "cpu:2x1",
    "triton": "cpu:1x2",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--batch", default="1,2,4")
    parser.add_argument("--rate", default="20:200:20")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--out", type=Path, default=Path("results/compare"))
    args = parser.parse_args()
    console = Console()
    model, _ = build_cached(args.model)
    runs, skipped = [], {}
    for system in args.systems.split(","):
        out = args.out / args.model / system
        console.print(f"[bold]{system}[/] ({SYSTEMS[system]}) ...")
        try:
            run_sweep(SweepSettings(model, out, workers=SYSTEMS[system], policy="dmda",
                                    batch_sizes=tuple(int(b) for b in args.batch.split(",")),
                                    rates=tuple(parse_rates(args.rate)), batches=args.batches, warmup=5,
                                    system=system, force=True, model_name=args.model,
                                    command=f"experiments/compare.py --system {system}"))
        except UserError as exc:  # e.g. Triton not installed: say so, compare the others
            skipped[system] = str(exc)
            console.print(f"  skipped: {exc}")
            continue
        runs.append(read_run(out))
    figure = save(compare_figure(runs), args.out / args.model / "compare.png")
    reference = next((r for r in runs if r.meta.system == "native"), runs[0])
    ref_top = env.system_rho_max(reference.points)
    common = set.intersection(*[set(env.usable(r.points).rate_qps) for r in runs]) if runs else set()
    at = max(common) if common else None
    rows = []
    for run in runs:
        top = env.system_rho_max(run.points)
        best = env.envelope(run.points)
        latency = float(best[best.rate_qps == at].mean_max_latency_ms.iloc[0]) if at is not None else None
        ref_best = env.envelope(reference.points)
        ref_latency = float(ref_best[ref_best.rate_qps == at].mean_max_latency_ms.iloc[0]) if at is not None else None
        rows.append({"system": run.meta.system, "workers": run.meta.workers, "rho_max_qps": top,
                     "rho_max_over_native": round(top / ref_top, 3) if top and ref_top else None,
                     "common_rate_qps": at, "best_latency_ms": round(latency, 3) if latency else None,
                     "latency_over_native": round(latency / ref_latency, 3) if latency and ref_latency else None})
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / args.model / "compare.csv", index=False)
    (args.out / args.model / "skipped.json").write_text(json.dumps(skipped, indent=1) + "\n")
    console.print(rich_table(frame.to_dict("records"),
                             f"{args.model}: systems on this machine (figure: {figure})"))


if __name__ == "__main__":
    main()
