"""On a GPU machine: staronnx's GPU worker against a plain ONNX Runtime loop, per batch size, as ratios from one run.

For each batch size N: native's S(N) (one session, `session.run` on numpy), then short sweeps of the same model
through native (`--system native --workers cuda:0`) and staronnx with 1, 2 and 4 workers on the GPU
(`cuda:0`, `cuda:0x2`, `cuda:0x4`) and `--workers auto` (the GPU workers and the CPU cores), over rates that are
fractions of native's N / S(N). Prints S(N) and rho_max per layout with their ratios to native, against the
targets of issue 12, and writes bench.json. On a machine without CUDA it says so in one line and exits 0.
Usage: python experiments/gpu_bench.py [--model googlenet] [--batch 1,8,32] [--fractions 0.5,1,2] [--cpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rich.console import Console

from staronnx_cli.analysis import envelope as env
from staronnx_cli.errors import UserError
from staronnx_cli.kinds import CPU, CUDA
from staronnx_cli.ortenv import cuda_status
from staronnx_cli.plots.tables import rich_table
from staronnx_cli.results.read import read_run
from staronnx_cli.runtime.workers import WorkerSpec
from staronnx_cli.sweep.runner import SweepSettings, run_sweep
from staronnx_cli.systems.native import NativeSession
from staronnx_cli.zoo.cache import build_cached

LAYOUTS = {"native": "cuda:0", "cuda:0": "cuda:0", "cuda:0x2": "cuda:0x2", "cuda:0x4": "cuda:0x4", "auto": "auto"}
CPU_LAYOUTS = {"native": "cpu:1x1", "cpu:1x1": "cpu:1x1", "cpu:2x1": "cpu:2x1"}  # --cpu: the bookkeeping anywhere
FRACTIONS = (0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0, 2.3, 2.6, 3.0)  # of native's N / S(N)


def native_service_s(model: Path, n: int, cpu: bool = False) -> float:
    worker = WorkerSpec("cpu0", CPU, (0,)) if cpu else WorkerSpec("cuda0", CUDA, (), 0)
    session = NativeSession(worker, model, n)
    try:
        session.service_time(n, runs=5)  # warm
        return session.service_time(n, runs=20)
    finally:
        session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("results/bench/gpu"))
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)),
                        help="the rates, as fractions of native's N / S(N) (fewer: a shorter run)")
    parser.add_argument("--cpu", action="store_true",
                        help="CPU layouts instead of the GPU's: the same bookkeeping, checked without a GPU")
    args = parser.parse_args()
    console = Console()
    status = cuda_status()
    if not status.usable and not args.cpu:
        console.print(f"no CUDA here ({status.reason}): make bench-gpu needs a GPU; nothing to do")
        return 0
    model, _ = build_cached(args.model)
    fractions = [float(f) for f in args.fractions.split(",")]
    rows: list[dict] = []
    raw: dict[int, dict] = {}
    (args.out / args.model).mkdir(parents=True, exist_ok=True)
    for n in (int(b) for b in args.batch.split(",")):
        s_native = native_service_s(model, n, args.cpu)
        rates = tuple(round(f * n / s_native, 1) for f in fractions)
        raw[n] = {"native_service_ms": 1000 * s_native, "rates": rates, "layouts": {}}
        for name, workers in (CPU_LAYOUTS if args.cpu else LAYOUTS).items():
            out = args.out / args.model / f"n{n}" / name.replace(":", "_")
            try:
                run_sweep(SweepSettings(model, out, workers=workers, policy="dmda", batch_sizes=(n,), rates=rates,
                                        batches=args.batches, warmup=5,
                                        system="native" if name == "native" else "staronnx", force=True,
                                        model_name=args.model, command=f"experiments/gpu_bench.py {name}"))
            except UserError as exc:
                console.print(f"N={n} {name}: skipped ({exc})")
                continue
            points = read_run(out).points
            service = points.service_ms.dropna()
            raw[n]["layouts"][name] = {"rho_max_qps": env.rho_max(points).get(n),
                                       "service_ms": float(service.iloc[0]) if len(service) else None,
                                       "capacity_qps": float(points.capacity_qps.dropna().iloc[0])
                                       if "capacity_qps" in points and points.capacity_qps.notna().any() else None}
            (args.out / args.model / "bench.json").write_text(json.dumps(raw, indent=1) + "\n")  # as measured
        rows += table_rows(n, raw[n])
    where = "CPU layouts" if args.cpu else status.reason
    console.print(rich_table(rows, f"{args.model} on {where}: staronnx against native ONNX Runtime"))
    return 0


def table_rows(n: int, result: dict) -> list[dict]:
    native = result["layouts"].get("native", {})
    native_rho, native_s = native.get("rho_max_qps"), native.get("service_ms")
    rows = []
    for name, figures in result["layouts"].items():
        rho, s = figures.get("rho_max_qps"), figures.get("service_ms")
        rows.append({"N": str(n), "layout": name, "S(N) ms": f"{s:.3f}" if s else "",
                     "S / native S": f"{s / native_s:.3f}" if s and native_s else "",
                     "rho_max q/s": f"{rho:g}" if rho else "none",
                     "rho_max / native": f"{rho / native_rho:.2f}" if rho and native_rho else "",
                     "capacity q/s": f"{figures['capacity_qps']:.0f}" if figures.get("capacity_qps") else "",
                     "grid top": "reached" if rho and math.isclose(rho, result["rates"][-1]) else ""})
    return rows


if __name__ == "__main__":
    sys.exit(main())
