"""`staronnx trace RUN_DIR --batch-size N --rate R -o trace.json`: one point for Perfetto / chrome://tracing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors


@handle_errors
def trace(
    run: Annotated[Path, typer.Argument(help="A run directory written by staronnx sweep.")],
    batch_size: Annotated[int | None, typer.Option(help="The point's batch size (default: the smallest).")] = None,
    rate: Annotated[float | None, typer.Option(help="The point's rate (default: its highest uncongested).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Trace file (JSON).")] = Path("trace.json"),
):
    """Write one point as a trace-event JSON file: a track per worker, a slice per task, releases marked."""
    from ..plots.tracefile import write_trace
    from ..results.read import read_run
    from ..results.schema import RUN_FILES

    if output.resolve().parent == run.resolve() and output.name in RUN_FILES:
        raise UserError(f"-o {output} would overwrite the run's own {output.name}: write the trace elsewhere, e.g. "
                        f"-o {run}/trace.json")
    if output.exists() and output.is_dir():
        raise UserError(f"-o {output} is a directory: give a file name, e.g. -o {output}/trace.json")
    written, n, rho = write_trace(read_run(run), batch_size, rate, output)
    console.print(f"wrote {written} (N={n} at {rho:g} q/s): open it in https://ui.perfetto.dev")
