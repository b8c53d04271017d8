"""Regenerate the small committed result fixtures of the plot tests (virtual clock: exact, deterministic).

python tests/data/runs/make_runs.py   (from the repository root)
"""

import json
from pathlib import Path

from staronnx_cli.kinds import CPU
from staronnx_cli.results.schema import BATCH_COLUMNS, POINT_COLUMNS, RUN_SCHEMA_VERSION, append_rows
from staronnx_cli.runtime.executors import ModelledExecutor
from staronnx_cli.runtime.loop import VirtualLoop
from staronnx_cli.runtime.perfmodel import PerfModel
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.scheduler import PartGraph
from staronnx_cli.runtime.workers import WorkerSpec
from staronnx_cli.sweep.point import PointSpec, SchedulerSetup, batch_rows, point_row, run_point

HERE = Path(__file__).parent
MODEL_SHA = "ab" * 32


def service(part: int, parts: int, n: int) -> float:
    whole = 0.004 + 0.003 * n  # S(N) = 4 + 3N ms
    return whole if parts == 1 else whole * (0.9 if part == 0 else 0.1)


def make(name: str, workers: int, parts: int, rates: list[float], sizes=(1, 2, 4), offload: float = 0.0) -> None:
    out = HERE / name
    out.mkdir(exist_ok=True)
    for file in out.glob("*.csv"):
        file.unlink()
    specs = [WorkerSpec(f"cpu{i}", CPU, (i,)) for i in range(workers)]
    graph = PartGraph.single() if parts == 1 else PartGraph([[], [0]], [{-1: 100}, {0: 10}])
    names = [w.name for w in specs]
    label = {"system": "staronnx", "engine": "sim", "policy": "dmda", "workers": f"cpu:{workers}x1"}
    for n in sizes:
        congested = False
        for rate in rates:
            if congested:
                row = {**label, "batch_size": n, "rate_qps": rate, "batches": 0, "congested": True,
                       "reason": "not run: already congested"}
            else:
                spec = PointSpec(n, rate, warmup=2, batches=30)
                executor = ModelledExecutor(VirtualLoop(), specs, lambda p, k, b: service(p, parts, b))
                records, stop, times, _ = run_point(spec, SchedulerSetup(specs, PerfModel(), VirtualLoop), executor,
                                                    make_policy("dmda"), graph)
                row = {**label, **point_row(spec, records, stop, times, names, sum(service(p, parts, n)
                                                                                  for p in range(parts)))}
                append_rows(out / "batches.csv", BATCH_COLUMNS,
                            [{"system": "staronnx", **b} for b in batch_rows(spec, records, names)])
                congested = bool(row["congested"])
            append_rows(out / "points.csv", POINT_COLUMNS, [row])
    meta = {"schema_version": RUN_SCHEMA_VERSION, "command": f"make_runs {name}", "system": "staronnx",
            "engine": "sim", "workers": f"cpu:{workers}x1", "policy": "dmda", "cpu": "Test CPU", "cores": workers,
            "gpu": None, "target": f"{name}.onnx" if parts == 1 else f"plans/{name}", "model_name": "tiny",
            "model_sha256": MODEL_SHA, "plan_sha256": "" if parts == 1 else "cd" * 32, "parts": parts,
            "offload_fraction": offload, "batches": 30, "warmup": 2, "seed": 0, "arrival": "fixed"}
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    grid = [100.0, 250.0, 400.0, 550.0]
    make("two_workers", 2, 1, grid)
    make("one_worker", 1, 1, grid)
    make("split", 2, 2, grid, offload=0.1)
