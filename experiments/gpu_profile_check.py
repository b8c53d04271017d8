"""On a GPU machine: does `staronnx profile --device cuda` measure GPU time, and do splits cut on it hit their target?

Runs the commands a user would (`staronnx profile MODEL --device cuda --batch 1,8,32`, then `staronnx split` at
offload 0.05 / 0.10 / 0.15 on those costs) and checks, per batch size, that the sum of the per-node times is
within 5 % of CUPTI's kernel time per run, and that each split achieves its target within the tolerance (0.03).
Prints a table and writes check.json. On a machine without CUDA it says so in one line and exits 0 (`--device cpu`
runs the same sequence on CPU costs, without the CUPTI comparison: the bookkeeping, checked anywhere).
Usage: python experiments/gpu_profile_check.py [--model googlenet] [--batch 1,8,32] [--device cuda|cpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from staronnx_cli.ortenv import cuda_status
from staronnx_cli.plots.tables import rich_table

TOLERANCE = 0.03
OFFLOADS = (0.05, 0.10, 0.15)


def staronnx(*args) -> str:
    """The command's output (shown as it was), failing the check if the command fails."""
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", *map(str, args)], check=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    sys.stdout.write(done.stdout)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--out", type=Path, default=Path("results/gpu_profile_check"))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same sequence on CPU costs (checks the bookkeeping where there is no GPU)")
    args = parser.parse_args()
    console = Console()
    status = cuda_status()
    if args.device == "cuda" and not status.usable:
        console.print(f"no CUDA here ({status.reason}): this check needs a GPU; nothing to do")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    costs = args.out / f"costs_{args.device}.csv"
    staronnx("profile", args.model, "--device", args.device, "--batch", args.batch, "--runs", 20, "-o", costs,
             "--force")
    meta = json.loads(costs.with_name(costs.stem + ".meta.json").read_text())
    timing = "gpu" if args.device == "cuda" else "cpu"
    rows, ok = [], True
    for batch, figures in meta["batches"].items():
        gpu = figures.get("gpu") or {}
        kernel = (gpu.get("kernel_us_per_run") or {}).get("mean_us")
        ratio = figures["node_sum_us"] / kernel if kernel else None
        good = figures["timing"] == timing and (args.device == "cpu" or (ratio is not None and abs(ratio - 1) <= 0.05))
        ok &= good
        rows.append({"check": f"profile batch {batch}", "timing": figures["timing"],
                     "node sum us": f"{figures['node_sum_us']:.1f}", "CUPTI kernel us/run": f"{kernel or 0:.1f}",
                     "ratio": "" if ratio is None else f"{ratio:.3f}",
                     "profiler on/off (GPU)": str(gpu.get("profiler_on_over_cupti_alone")), "ok": str(good)})
    splits = []
    for batch in (int(b) for b in meta["batches"]):
        for offload in OFFLOADS:
            plan_dir = args.out / f"plan_b{batch}_{offload:.2f}"
            said = staronnx("split", args.model, "--costs", costs, "--offload", offload, "--batch", batch,
                            "-o", plan_dir, "--force")
            plan = json.loads((plan_dir / "plan.json").read_text())
            # within the tolerance, or the target is out of reach of any acyclic chain of this model's nodes (the
            # split says so: coarse node weights, as a tiny model's on a noisy CPU); a reachable target missed fails
            reachable = "cannot be reached within tolerance" not in said
            good = (abs(plan["achieved_fraction"] - offload) <= TOLERANCE or not reachable) and plan["timing"] == timing
            ok &= good
            splits.append({"batch": batch, "offload": offload, "achieved": plan["achieved_fraction"],
                           "fraction_of": plan["fraction_of"], "reachable": reachable, "ok": good})
            rows.append({"check": f"split batch {batch} at {offload:.2f}", "timing": plan["timing"],
                         "node sum us": "", "CUPTI kernel us/run": "", "ratio": f"{plan['achieved_fraction']:.3f}",
                         "profiler on/off (GPU)": "", "ok": str(good)})
    console.print(rich_table(rows, f"{args.model}: GPU profile and GPU splits ({meta.get('gpu_clock')})"))
    (args.out / "check.json").write_text(json.dumps({"meta": meta, "splits": splits, "passed": ok}, indent=2))
    console.print(f"{'passed' if ok else 'FAILED'}; wrote {args.out / 'check.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
