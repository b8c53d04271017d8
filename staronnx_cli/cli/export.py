"""`staronnx export RUN_DIR... -o DIR`: each run's held points as perf_analyzer's CSV (its `-f perf.csv`), one file
per batch size, for the tools built on those files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors


@handle_errors
def export(
    runs: Annotated[list[Path], typer.Argument(help="Run directories written by staronnx sweep.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The folder of the CSV files.")] = Path("export"),
    format_: Annotated[str, typer.Option("--format", help="perf_analyzer: its -f CSV (request-rate form, times in "
                                                          "us).")] = "perf_analyzer",
    force: Annotated[bool, typer.Option(help="Overwrite files of the same names in the folder.")] = False,
):
    """Write each run's uncongested points as perf_analyzer's CSV: RUN.N<n>.csv (a mix: RUN.MODEL.N<n>.COMBO.csv)."""
    from ..outputfile import ready_to_write, write_text_atomic
    from ..results.export import perf_analyzer_tables, table_text
    from ..results.read import read_runs

    if format_.replace("-", "_").lower() != "perf_analyzer":
        raise UserError(f"--format {format_}: the one format written is perf_analyzer (its -f CSV)")
    if output.exists() and not output.is_dir():
        raise UserError(f"-o {output} is a file: export writes a folder of CSV files, e.g. -o export")
    if (output / "run.json").exists() or (output / "plan.json").exists():
        raise UserError(f"-o {output} is a run or a plan directory: export writes a folder of its own; choose another")
    files, empty = {}, []
    for run in read_runs(runs):
        tables = perf_analyzer_tables(run.points)
        if not tables:
            empty.append(str(run.path))
        for part, rows in tables.items():
            name = f"{run.path.resolve().name}.{part}.csv"
            if name in files:
                raise UserError(f"two runs named '{run.path.resolve().name}' would write {name}: export them into "
                                "two folders")
            files[name] = table_text(rows)
    if not files:
        raise UserError("no run has an uncongested point without errors: nothing perf_analyzer would report; sweep "
                        "lower rates")
    taken = [name for name in files if (output / name).exists()]
    if taken and not force:
        raise UserError(f"'{output / taken[0]}' exists: add --force to overwrite it, or choose another -o")
    output.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        ready_to_write(output / name)
        write_text_atomic(output / name, text)
    console.print(f"wrote {len(files)} perf_analyzer CSV file(s) to {output}/: {', '.join(sorted(files))}",
                  soft_wrap=True)
    for path in empty:  # perf_analyzer writes no row for a rate it cannot hold
        console.print(f"note: {path} has no uncongested point without errors: no file for it", soft_wrap=True)
