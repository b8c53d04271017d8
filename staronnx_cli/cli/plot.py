"""`staronnx plot RUN_DIR...`: figures (and the answer as a table) from result files only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..plots import figures, tables
from ..plots.results import read_runs
from .common import console, handle_errors

KINDS = ("envelope", "batches", "compare", "splits", "timeline")


@handle_errors
def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories written by staronnx sweep.")],
    kind: Annotated[str, typer.Option(help="envelope, batches, compare, splits or timeline.")] = "envelope",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Figure file: .png, .svg or .pdf "
                                                "(default: <run>/<kind>.png).")] = None,
    log: Annotated[bool, typer.Option(help="Log-scale latency axis.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="timeline: the point's batch size.")] = None,
    rate: Annotated[float | None, typer.Option(help="timeline: the point's rate in queries/s.")] = None,
    table: Annotated[bool, typer.Option(help="Print the envelope and rho_max per N instead of drawing.")] = False,
    format: Annotated[str, typer.Option(help="With --table: rich or md (Markdown).")] = "rich",
):
    """Draw latency against throughput (per batch size, the best-N envelope, comparisons, splits, a timeline)."""
    if kind not in KINDS:
        raise UserError(f"--kind '{kind}' is unknown: choose one of {', '.join(KINDS)}")
    if format not in ("rich", "md"):
        raise UserError(f"--format '{format}' is unknown: choose rich or md")
    loaded = read_runs(runs)
    if table:
        for run in loaded:
            figures.need_usable(run)
            _print_tables(run, format)
        return
    if kind in ("envelope", "batches", "timeline") and len(loaded) > 1:
        raise UserError(f"--kind {kind} draws one run; for several use --kind compare (or splits)")
    if kind == "envelope":
        fig = figures.envelope_figure(loaded[0], log)
    elif kind == "batches":
        fig = figures.batches_figure(loaded[0], log)
    elif kind == "compare":
        fig = figures.compare_figure(loaded, log=log)
    elif kind == "splits":
        fig = figures.splits_figure(loaded, log)
    else:
        fig = figures.timeline_figure(loaded[0], batch_size, rate)
    written = figures.save(fig, output or loaded[0].path / f"{kind}.png")
    console.print(f"wrote {written}")


def _print_tables(run, format: str) -> None:
    envelope_rows, rho_rows = tables.envelope_rows(run), tables.rho_rows(run)
    if format == "md":
        typer.echo(f"### {run.label}\n\n{tables.markdown(envelope_rows)}\n{tables.markdown(rho_rows)}")
        return
    console.print(tables.rich_table(envelope_rows, f"{run.label}: best batch size at each rate"))
    console.print(tables.rich_table(rho_rows, "rho_max(N): highest uncongested rate"))
