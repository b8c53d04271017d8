"""The paper's Fig. 4 question, simulated: on the paper's machine, does a split push saturation further?

For each of the paper's four zoo models: profile here (cpu:2, batch 1 and 8) -> the GPU's estimated
per-node times (the platform's cuda speed applied to that profile) -> split at 5, 10 and 15 % of the GPU's
time -> sweep the whole model and each split with --engine sim on experiments/platforms/
paper_p100_2x_e5_2683v4.toml (dmda, batch 1..32) -> rho_max table and a splits figure per model.
Usage: python experiments/paper_sim.py [--models googlenet,...] [--out results/paper_sim]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from staronnx_cli.analysis import envelope as env
from staronnx_cli.plots.figures import save, splits_figure
from staronnx_cli.plots.tables import rich_table
from staronnx_cli.profile.costs import meta_path
from staronnx_cli.results.read import read_runs
from staronnx_cli.runtime.platform import read_platform
from staronnx_cli.runtime.simtimes import part_times, read_speed_costs, scaled_costs
from staronnx_cli.sweep.runner import SweepSettings, run_sweep
from staronnx_cli.zoo.cache import build_cached
from staronnx_cli.zoo.registry import ZOO

PLATFORM = Path(__file__).parent / "platforms" / "paper_p100_2x_e5_2683v4.toml"
MODELS = [name for name, e in ZOO.items() if e.role == "paper"]
OFFLOADS = (0.05, 0.10, 0.15)
BATCHES = (1, 2, 4, 8, 16, 32)
STAR = [sys.executable, "-m", "staronnx_cli"]


def costs_file(model: str) -> Path:
    return Path("results/paper") / model / "costs.csv"


def ensure_profile(model: str) -> Path:
    """cpu:2 times at batch 1 and 8 (the platform scales them and interpolates other batch sizes)."""
    path = costs_file(model)
    if path.exists() and {1, 8} <= set(pd.read_csv(path).batch_size):
        return path
    subprocess.run([*STAR, "profile", model, "--device", "cpu:2", "--batch", "1,8", "--runs", "5", "--warmup", "1",
                    "-o", str(path), "--force"], check=True)
    return path


def gpu_costs(model: str, platform) -> Path:
    """The profile plus the GPU's estimated rows (device cuda:0), for `split --device cuda:0`."""
    speed = next(s for s in platform.speeds if s.kind == "cuda")
    cpu = read_speed_costs(speed, model)
    gpu = scaled_costs(cpu, speed).assign(device="cuda:0")
    out = costs_file(model).with_name("costs_with_gpu_estimate.csv")
    pd.concat([cpu, gpu]).to_csv(out, index=False)
    shutil.copy(meta_path(costs_file(model)), meta_path(out))
    return out


def split(model: str, costs: Path, offload: float) -> Path:
    plan = Path("results/paper") / model / f"plan_gpu_{round(100 * offload):02d}"
    subprocess.run([*STAR, "split", model, "--costs", str(costs), "--device", "cuda:0", "--offload", str(offload),
                    "--parts", "2", "--method", "both", "-o", str(plan), "--force"], check=True,
                   stdout=subprocess.DEVNULL)
    return plan


def rate_grid(model: str, platform) -> list[float]:
    """From 5 % to 160 % of the whole model's estimated capacity at batch 32 (GPU plus both CPU workers)."""
    times = part_times(platform, [build_cached(model)[0]], model)
    capacity = sum(32 / times.mean(0, kind, 32) for kind in {g.kind_key for g in platform.workers})
    return sorted({float(round(r, -1 if capacity > 300 else 0)) for r in capacity * np.linspace(0.05, 1.6, 94)})


def sweep(model: str, target: Path, rates: list[float], out: Path) -> Path:
    run_sweep(SweepSettings(target, out, policy="dmda", batch_sizes=BATCHES, rates=tuple(rates), batches=50,
                            warmup=5, engine="sim", platform=PLATFORM, force=True, model_name=model,
                            command=f"paper_sim {model} {target}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=Path("results/paper_sim"))
    args = parser.parse_args()
    console = Console()
    platform = read_platform(PLATFORM)
    summary = []
    for model in args.models.split(","):
        console.print(f"[bold]{model}[/]: profile, GPU estimate, splits, simulated sweeps")
        path, _ = build_cached(model)
        ensure_profile(model)
        costs = gpu_costs(model, platform)
        rates = rate_grid(model, platform)
        runs = [sweep(model, path, rates, args.out / model / "whole")]
        for f in OFFLOADS:
            plan = split(model, costs, f)
            runs.append(sweep(model, plan, rates, args.out / model / f"split_{round(100 * f):02d}"))
        loaded = read_runs(runs)
        save(splits_figure(loaded), args.out / model / "splits.png")
        whole = env.system_rho_max(loaded[0].points)
        for run in loaded:
            top = env.system_rho_max(run.points)
            summary.append({"model": model, "run": run.path.name, "parts": run.meta.parts,
                            "offload": run.meta.offload_fraction, "rho_max_qps": top,
                            "rho_max_over_whole": round(top / whole, 3) if top and whole else None,
                            "grid_step_qps": round(rates[1] - rates[0], 1)})
    frame = pd.DataFrame(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "summary.csv", index=False)
    (args.out / "platform.json").write_text(json.dumps({"platform": str(PLATFORM), "name": platform.name}) + "\n")
    console.print(rich_table(frame.to_dict("records"),
                             f"simulated on {platform.name}: rho_max (highest uncongested rate of the grid)"))


if __name__ == "__main__":
    main()
