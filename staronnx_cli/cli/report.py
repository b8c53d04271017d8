"""`staronnx report RUN_DIR... -o report.md`: figures, tables and metadata of runs in one Markdown file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors


@handle_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories written by staronnx sweep, or the folder of a "
                                                    "fleet campaign (staronnx fleet -o).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The Markdown file.")] = Path("report.md"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing report.")] = False,
    slo: Annotated[str | None, typer.Option(
        help="A latency objective, e.g. 'p99<=5', quoted (metrics: mean-max, p50, p90, p95, p99, max; ms): each "
             "run's verdict opens with the highest rate where a batch size met it, and which.")] = None,
):
    """Write the figures, the best-N and rho_max tables and each run's metadata into one Markdown file."""
    from ..analysis.slo import parse_slo
    from ..plots.report import write_report
    from ..results.read import read_runs

    objective = parse_slo(slo) if slo is not None else None

    if output.suffix.lower() != ".md":
        raise UserError(f"-o {output}: a report is Markdown, name it e.g. report.md")
    if output.is_dir():  # --force could not help: it was asked for, then refused
        raise UserError(f"-o {output} is a folder: a report is one Markdown file, e.g. -o {output / 'report.md'}")
    if output.exists() and not force:
        raise UserError(f"'{output}' exists: add --force to overwrite it")
    from ..fleet.run import is_fleet

    if len(runs) == 1 and is_fleet(runs[0]):  # a fleet campaign: its answer across kinds, then each run
        from ..analysis.fleet import fleet_answer, fleet_rows, read_fleet
        from ..plots.tables import markdown

        fleet = read_fleet(runs[0])
        preface = ["## Across machine kinds", "", *[f"- {s}" for s in fleet_answer(fleet)], "",
                   markdown(fleet_rows(fleet)), ""]
        written = write_report([f.run for f in fleet], output, preface, objective)
    else:
        written = write_report(read_runs(runs), output, slo=objective)
    folder = written[0].with_name(written[0].stem + "_files")
    console.print(f"wrote {written[0]} and {len(written) - 1} figure(s) in {folder}/")
