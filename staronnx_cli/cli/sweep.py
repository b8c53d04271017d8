"""`staronnx sweep MODEL|PLAN_DIR`: fixed-rate query streams through the runtime over batch sizes x rates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..sweep.grid import parse_rates
from ..sweep.runner import SweepSettings, run_sweep
from .common import console, handle_errors, parse_int_list
from .profile import resolve_model


@handle_errors
def sweep(
    target: Annotated[str, typer.Argument(help="An .onnx file, a zoo model name, or a plan directory from split.")],
    workers: Annotated[str, typer.Option(help="cpu:GxK (G workers of K cores), cpu:K, cuda:ID, or auto.")] = "cpu:1x2",
    policy: Annotated[str, typer.Option(help="eager, roundrobin, dmda, or static:KIND,KIND.")] = "dmda",
    batch: Annotated[str, typer.Option(help="Batch sizes, comma separated.")] = "1,2,4",
    rate: Annotated[str, typer.Option(help="Rates in queries/s: START:STOP:STEP or a list.")] = "10:100:10",
    batches: Annotated[int, typer.Option(help="Measured batches per point (paper: 50).")] = 50,
    warmup: Annotated[int, typer.Option(help="Warm-up batches per point, not measured.")] = 5,
    system: Annotated[str, typer.Option(help="Label of the system in the result files.")] = "staronnx",
    seed: Annotated[int, typer.Option(help="Seed of the random inputs, recorded in run.json.")] = 0,
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory.")] = Path("results/run"),
    resume: Annotated[bool, typer.Option(help="Continue a run: skip the points already in points.csv.")] = False,
    force: Annotated[bool, typer.Option(help="Start the run directory over.")] = False,
):
    """Replay fixed-rate streams and write run.json, batches.csv and points.csv, point by point."""
    path = Path(target)
    settings = SweepSettings(path if path.is_dir() else resolve_model(target), output, workers, policy,
                             tuple(parse_int_list(batch, "--batch")), tuple(parse_rates(rate)), batches, warmup,
                             system, seed, resume, force, command="staronnx sweep " + target)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("sweeping", total=len(settings.batch_sizes) * len(settings.rates))

        def on_point(row):
            latency = row.get("mean_max_latency_ms")
            text = "congested" if row["congested"] else f"{latency:.2f} ms"
            bar.console.print(f"N={row['batch_size']:<3} {row['rate_qps']:>8g} q/s  {text}  {row.get('reason', '')}")

        run_sweep(settings, on_point, lambda done, total: bar.update(task, completed=done))
    render_answer(output)


def render_answer(output: Path) -> None:
    """For each rate the batch size of least mean max-latency, and rho_max per batch size."""
    points = pd.read_csv(output / "points.csv")
    ok = points[~points.congested.astype(bool)]
    table = Table(title=f"{output}: best batch size N*(rho) (least mean max-latency among uncongested points)")
    for column in ("rate q/s", "N*", "mean max-latency ms", "std ms"):
        table.add_column(column, justify="right")
    for rate_qps, group in ok.groupby("rate_qps"):
        best = group.loc[group.mean_max_latency_ms.astype(float).idxmin()]
        table.add_row(f"{rate_qps:g}", str(int(best.batch_size)), f"{float(best.mean_max_latency_ms):.2f}",
                      f"{float(best.std_max_latency_ms):.2f}")
    console.print(table)
    rho = Table(title="rho_max(N): highest uncongested rate")
    rho.add_column("N", justify="right")
    rho.add_column("rho_max q/s", justify="right")
    for n, group in points.groupby("batch_size"):
        good = group[~group.congested.astype(bool)]
        rho.add_row(str(n), f"{good.rate_qps.max():g}" if len(good) else "none (congested at every rate)")
    console.print(rho)
