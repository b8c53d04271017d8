"""Benchmark: simulated (candidate, rate) points per minute of advise's search (issue 16's target: >= 2,000 on 2
cores), with one process, a pool of every usable core and (if installed) Ray on this machine, side by side.

Every candidate of the H100 platform in the repository (its three layouts x batch sizes 1 to 64 x policies) at
eight rates, simulated the way `advise` simulates them (the sweep's code on the virtual clock, 50 batches per
point, files written), without pruning. Usage: python experiments/advise_bench.py [--rates 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

from rich.console import Console

from staronnx_cli.advise.run import AdviseSettings, _platform_space
from staronnx_cli.advise.search import SearchSettings, _run, process_pool
from staronnx_cli.advise.space import BATCH_SIZES, POLICIES, candidates
from staronnx_cli.devices import usable_cores
from staronnx_cli.plots.tables import rich_table
from staronnx_cli.zoo.cache import build_cached

PLATFORM = Path(__file__).parent / "platforms" / "h100_googlenet_whole.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=8)
    args = parser.parse_args()
    model = build_cached("googlenet")[0]
    rates = [100.0 * (i + 1) for i in range(args.rates)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        advise = AdviseSettings(model, Path(tmp), tuple(rates), "googlenet", platform=PLATFORM, offloads=())
        targets, layouts, _, platforms, _, _ = _platform_space(advise)
        jobs = [(c, rates, None) for n in BATCH_SIZES for c in candidates(targets, layouts, n, POLICIES)]
        engines = [(f"{n} process(es)", n, False) for n in sorted({1, usable_cores()})]
        if importlib.util.find_spec("ray"):
            engines.append(("Ray on this machine", usable_cores(), True))
        for engine, processes, ray in engines:
            settings = SearchSettings("googlenet", targets, layouts, BATCH_SIZES, tuple(rates), POLICIES,
                                      Path(tmp) / engine.replace(" ", "_"), platforms=platforms, jobs=processes)
            pool = process_pool(processes, ray)
            if pool is not None and not ray:  # the forkserver and its children started, as Ray's are, before
                list(pool.map(abs, range(4 * processes)))
            started = time.perf_counter()  # starting Ray or the pool is paid once per advise, not per point
            results = list(_run(jobs, settings, pool))
            seconds = time.perf_counter() - started
            if pool is not None:
                pool.shutdown()
            points = sum(len(r) for r in results)
            ran = sum(1 for r in results for p in r if not str(p.get("reason", "")).startswith("not run"))
            rows.append({"engine": engine, "candidates": len(jobs), "points": points,
                         "simulated": ran,  # the others: recorded congested without running (beyond a congested rate)
                         "seconds": round(seconds, 2), "points per minute": round(60 * points / seconds),
                         "simulated per minute": round(60 * ran / seconds)})
    Console().print(rich_table(rows, f"advise's simulated search on {usable_cores()} cores"))


if __name__ == "__main__":
    main()
