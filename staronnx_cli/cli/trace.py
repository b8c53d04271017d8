"""`staronnx trace RUN_DIR --batch-size N --rate R -o trace.json`: one point for Perfetto / chrome://tracing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors, refuse_measured_file


@handle_errors
def trace(
    run: Annotated[Path, typer.Argument(help="A run directory written by staronnx sweep.")],
    batch_size: Annotated[int | None, typer.Option(help="The point's batch size (default: the smallest).")] = None,
    rate: Annotated[float | None, typer.Option(help="The point's rate (default: its highest uncongested).")] = None,
    mix: Annotated[str | None, typer.Option(help="A mix run: the point's batch-size combination as points.csv's mix "
                                                 "column names it, e.g. 'cnn=2 mlp=1' (default: the only one).")
                   ] = None,
    scale: Annotated[float | None, typer.Option(help="A mix run: the point's scale (default: the highest at which "
                                                     "no model congested).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Trace file (JSON; default: "
                                                "<run>/trace.json, as plot's figures).")] = None,
    force: Annotated[bool, typer.Option(help="Replace a file at -o that is not a trace.")] = False,
):
    """Write one point as a trace-event JSON file: a track per worker, a slice per task, releases marked (a mix
    run's point: every model's tasks, each named by its model)."""
    from ..plots.tracefile import is_trace, write_trace
    from ..results.read import read_run

    named = "-o" if output is not None else "the default output"  # RUN/trace.json: not the user's -o to blame
    output = output or run / "trace.json"
    for path, what in ((run, "the run directory"), (output, named)):
        try:
            path.resolve()
        except RuntimeError:  # Python 3.11's pathlib: a loop of links is no OSError
            raise UserError(f"{what} {path} goes round in symbolic links: choose another path") from None
    refuse_measured_file(output)  # this run's files or another's, a plan's: never a trace's place
    if output.exists() and output.is_dir():
        example = output / "trace.json" if named == "-o" else run / "point.trace.json"
        raise UserError(f"{named} {output} is a directory: give a file name, e.g. -o {example}")
    if output.is_file() and not force and not is_trace(output):
        raise UserError(f"{named} {output} holds a file that is not a trace: add --force to replace it, or choose "
                        f"{'another ' if named == '-o' else 'an '}-o")
    if named == "-o" and output.suffix.lower() != ".json":  # -o t.png got JSON under a picture's name
        raise UserError(f"-o {output}: a trace is JSON (trace-event format): give a path ending in .json, e.g. "
                        f"{output.with_suffix('.json')}")
    written, point = write_trace(read_run(run), batch_size, rate, output, mix, scale)
    console.print(f"wrote {written} ({point}): open it in https://ui.perfetto.dev")
