"""Fan-out speed of `staronnx fleet` (issue 29): 8 simulated sweeps (googlenet on the measured H100 platform, one
seed each) on a 2-node Ray cluster on this machine, against the same 8 run one after the other in one process.
Prints both times and their ratio, from one run, and checks the rows are the same (simulation is exact).
Usage: python experiments/fleet_bench.py [--batches 1000] [--out results/bench/fleet]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ROOT / "experiments" / "platforms" / "h100_googlenet_whole.toml"
SWEEPS = 8


def campaign(path: Path, batches: int) -> None:
    sweeps = "".join(f'[[sweep]]\nname = "sim{i}"\ntarget = "googlenet"\nkinds = ["twin"]\nengine = "sim"\n'
                     f'platform = "{PLATFORM}"\nbatch = "1,2,4,8"\nbatches = {batches}\nseed = {i}\n\n'
                     for i in range(SWEEPS))
    path.write_text(f'name = "fan-out"\n[kinds.twin]\nresources = {{ twin = 1 }}\n\n{sweeps}')


def one_process(out: Path, batches: int) -> float:
    from staronnx_cli.sweep.runner import run_sweep
    from staronnx_cli.sweep.settings import SweepSettings
    from staronnx_cli.zoo.cache import build_cached

    model = build_cached("googlenet")[0]
    started = time.perf_counter()
    for i in range(SWEEPS):
        run_sweep(SweepSettings(model, out / f"sim{i}", batch_sizes=(1, 2, 4, 8), auto_rates=True, rates=(),
                                batches=batches, seed=i, engine="sim", platform=PLATFORM, model_name="googlenet",
                                force=True))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "fleet")
    args = parser.parse_args()
    try:
        import ray
    except ImportError:
        print("fleet_bench: Ray is not installed (pip install -e '.[ray]', or make test installs it): skipped")
        return
    from ray.cluster_utils import Cluster

    args.out.mkdir(parents=True, exist_ok=True)
    local = one_process(args.out / "local", args.batches)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"twin": 1}})
    cluster.add_node(num_cpus=1, resources={"twin": 1})
    cluster.wait_for_nodes()
    try:
        file = args.out / "campaign.toml"
        campaign(file, args.batches)
        fleet_out = args.out / "fleet"
        subprocess.run(["rm", "-rf", str(fleet_out)], check=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "staronnx_cli", "fleet", str(file), "-o", str(fleet_out),
                               "--ray-address", cluster.address], capture_output=True, text=True)
        fleet = time.perf_counter() - started
    finally:
        ray.shutdown()
        cluster.shutdown()
    if done.returncode != 0:
        raise SystemExit(f"fleet failed: {done.stderr.strip()}")
    same = all(pd.read_csv(args.out / "local" / f"sim{i}" / "points.csv").equals(
        pd.read_csv(fleet_out / f"sim{i}" / "twin" / "points.csv")) for i in range(SWEEPS))
    result = {"sweeps": SWEEPS, "batches": args.batches, "one_process_s": round(local, 2),
              "fleet_2_nodes_s": round(fleet, 2), "speedup": round(local / fleet, 3), "rows_identical": same}
    (args.out / "fleet_bench.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{SWEEPS} simulated sweeps: one after the other in one process {local:.1f} s; fleet on 2 Ray nodes "
          f"{fleet:.1f} s (Ray's start included): speedup {local / fleet:.2f}x; rows identical: {same}")


if __name__ == "__main__":
    main()
