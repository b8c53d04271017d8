"""Operator parallelism (issue 28, Opara's question): does running a model's independent branches at once lower a
single query's latency? Every figure from this one run, through the CLI a user runs:

- this machine, MODEL at batch 1, low load (`--rate`, default 5 q/s: the Opara metric, a query's latency alone):
  the whole model sequential on cpu:1x1 and on cpu:1x2 (ONNX Runtime's intra-op threads), ONNX Runtime's parallel
  mode on cpu:1x2 (`--system ortparallel`: independent nodes on inter-op threads), ONNX Runtime's logic streams laid
  out by the branch plan (`--system ortstreams`), and a branch plan
  (`split --method branches --streams 2`) on cpu:1x1,cpu:1x1; with `--rho-max`, each one's saturation too
  (auto rates: minutes);
- the same question simulated on an H100 (experiments/platforms/h100_googlenet_streams{2,4}.toml, a what-if:
  see those files for what their node times are): googlenet whole on one stream vs branch plans on 2 and 4 streams;
- the models without branches say so (efficientnetv2_s: a chain of nodes).
Writes OUT/opara.json and prints one table. Usage: python experiments/opara_bench.py [--out results/bench/opara]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ROOT / "experiments" / "platforms"
H100_COSTS = PLATFORMS / "h100_googlenet_gpu_hostlaunch_costs.csv"
console = Console(width=150)


def staronnx(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", *map(str, args)], capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: swept, no answer (e.g. no congestion in the grid)
        raise SystemExit(f"staronnx {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def point(run: Path) -> dict:
    rows = pd.read_csv(run / "points.csv")
    fine = rows[~rows.congested.astype(str).str.lower().isin(["true", "1"])]
    first = fine.iloc[0] if len(fine) else rows.iloc[0]
    return {"mean_max_latency_ms": float(first.mean_max_latency_ms), "rate_qps": float(first.rate_qps)}


def rho_max(run: Path) -> float | None:
    rows = pd.read_csv(run / "points.csv")
    fine = rows[~rows.congested.astype(str).str.lower().isin(["true", "1"])]
    return float(fine.rate_qps.max()) if len(fine) else None


def plan_dag(plan: Path) -> dict:
    return json.loads((plan / "plan.json").read_text())["dag"]


def real_rows(out: Path, model: str, rate: float, batches: int, with_rho: bool) -> list[dict]:
    costs, plan = out / "costs.csv", out / "plan_branches2"
    staronnx("profile", model, "--device", "cpu:2", "--batch", "1", "--runs", "20", "--force", "-o", costs)
    staronnx("split", model, "--costs", costs, "--method", "branches", "--streams", "2", "--force", "-o", plan)
    rows = []
    for label, target, workers, system, policy in (
            ("whole, sequential, 1 core", model, "cpu:1x1", "staronnx", "dmda"),
            ("whole, sequential, 2 cores (intra-op threads)", model, "cpu:1x2", "staronnx", "dmda"),
            ("whole, plain ORT loop, 2 cores (intra-op threads)", model, "cpu:1x2", "native", "dmda"),
            ("whole, ORT_PARALLEL, 2 cores (inter-op threads)", model, "cpu:1x2", "ortparallel", "dmda"),
            ("whole, ORT's logic streams by the branch plan, 2 cores", plan, "cpu:1x2", "ortstreams", "dmda"),
            ("branch plan, 2 streams on 2 one-core workers, dmda", plan, "cpu:1x1,cpu:1x1", "staronnx", "dmda"),
            ("branch plan, 2 streams on 2 one-core workers, opara", plan, "cpu:1x1,cpu:1x1", "staronnx", "opara")):
        policy_option = ("--policy", policy) if system == "staronnx" else ()  # a baseline places its own way
        name = (f"{system}_{workers.replace(':', '').replace(',', '_')}_"
                f"{'branches_' + policy if target == plan else 'whole'}")
        low = out / f"{name}_low"
        staronnx("sweep", target, "--workers", workers, "--system", system, *policy_option, "--batch", "1",
                 "--rate", rate, "--batches", batches, "--force", "-o", low)
        row = {"where": "this machine", "model": model, "what": label, "workers": workers, "system": system,
               "policy": policy, **point(low)}
        if with_rho:
            auto = out / f"{name}_auto"
            staronnx("sweep", target, "--workers", workers, "--system", system, *policy_option, "--batch", "1",
                     "--batches", "20", "--force", "-o", auto)
            row["rho_max_qps"] = rho_max(auto)
        rows.append(row)
    rows[-1]["plan"] = rows[-2]["plan"] = plan_dag(plan)
    return rows


def simulated_rows(out: Path) -> list[dict]:
    """googlenet on a simulated H100: whole on one stream, branch plans on 2 and 4 streams, batch 1, 50 q/s."""
    rows = []
    whole = out / "h100_whole"
    staronnx("sweep", "googlenet", "--engine", "sim", "--platform", PLATFORMS / "h100_googlenet_streams2.toml",
             "--batch", "1", "--rate", "50", "--batches", "200", "--force", "-o", whole)
    # one task per batch: at low load one stream runs each query, the other idles
    rows.append({"where": "simulated H100", "model": "googlenet", "what": "whole, 1 stream", "workers": "cuda:0x2",
                 "system": "staronnx (sim)", **point(whole)})
    for streams in (2, 4):
        plan = out / f"h100_plan_branches{streams}"
        staronnx("split", "googlenet", "--costs", H100_COSTS, "--allow-host-times", "--method", "branches",
                 "--streams", streams, "--force", "-o", plan)
        for policy in ("dmda", "opara"):
            run = out / f"h100_branches{streams}_{policy}"
            staronnx("sweep", plan, "--engine", "sim", "--platform",
                     PLATFORMS / f"h100_googlenet_streams{streams}.toml", "--policy", policy, "--batch", "1",
                     "--rate", "50", "--batches", "200", "--force", "-o", run)
            rows.append({"where": "simulated H100", "model": "googlenet",
                         "what": f"branch plan, {streams} streams, {policy}", "workers": f"cuda:0x{streams}",
                         "system": "staronnx (sim)", "policy": policy, **point(run), "plan": plan_dag(plan)})
    return rows


def no_branches(out: Path, model: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", "split", model, "--method", "branches", "--force",
                           "-o", out / f"plan_{model}"], capture_output=True, text=True)
    return {"model": model, "exit_code": done.returncode, "says": done.stderr.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "opara")
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rho-max", action="store_true", help="also each configuration's saturation (minutes)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = real_rows(args.out, args.model, args.rate, args.batches, args.rho_max) + simulated_rows(args.out)
    without = [no_branches(args.out, "efficientnetv2_s")]
    result: dict[str, object] = {"rows": rows, "without_branches": without}
    here = [r for r in rows if r["where"] == "this machine"]
    best_whole = min(r["mean_max_latency_ms"] for r in here if "plan" not in r)
    best_branch = min(r["mean_max_latency_ms"] for r in here if "plan" in r)
    result["branch_over_best_other"] = round(best_branch / best_whole, 3)
    sim = [r for r in rows if r["where"] == "simulated H100"]
    result["sim_branches_over_whole"] = {r["what"]: round(r["mean_max_latency_ms"] / sim[0]["mean_max_latency_ms"], 3)
                                         for r in sim[1:]}
    (args.out / "opara.json").write_text(json.dumps(result, indent=1) + "\n")
    table = Table(title=f"{args.model} at batch 1: a query's latency at low load ({args.rate:g} q/s here, 50 q/s "
                        "simulated)")
    for column in ("where", "what", "workers", "mean max-latency ms", "rho_max q/s", "plan parallelism"):
        table.add_column(column, justify="right" if column[0] in "mrp" else "left")
    for r in rows:
        dag = r.get("plan")
        table.add_row(r["where"], r["what"], r["workers"], f"{r['mean_max_latency_ms']:.2f}",
                      f"{r['rho_max_qps']:.4g}" if r.get("rho_max_qps") else "",
                      f"{dag['parallelism']:.2f}x ({dag['critical_path_us'] / 1000:.2f} of "
                      f"{dag['total_us'] / 1000:.2f} ms)" if dag else "")
    console.print(table)
    console.print(f"branch plan / best other here: {result['branch_over_best_other']:.3f}; simulated H100 branch "
                  f"plans / whole: {result['sim_branches_over_whole']}")
    for entry in without:
        console.print(f"{entry['model']}: {entry['says']}")
    console.print(f"wrote {args.out / 'opara.json'}")


if __name__ == "__main__":
    main()
