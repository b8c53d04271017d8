"""`staronnx fleet CAMPAIGN.toml -o DIR`: a campaign's sweeps on the machine kinds of a Ray cluster, one answer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


@handle_errors
def fleet(
    campaign: Annotated[Path, typer.Argument(help="The campaign file (TOML): machine kinds and sweeps, see "
                                                  "docs/fleet.md.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The campaign's folder: a run directory per (sweep, "
                                                                "kind), fleet.json. Run again to finish it.")
                      ] = Path("results/fleet"),
    ray_address: Annotated[str | None, typer.Option(help="The Ray cluster's address (default: the cluster 'ray "
                                                         "start' began on this machine, if one runs; else a Ray "
                                                         "instance started here, which has none of the kinds' "
                                                         "resources).")] = None,
):
    """Run every (sweep, machine kind) job of CAMPAIGN on a node of that kind, each point's rows written here as
    they are measured; a job lost with its node is resumed on another node of its kind."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..fleet.run import FleetSettings, run_fleet

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("jobs", total=None)

        def on_progress(p) -> None:
            left = f"; about {p.seconds_left:,.0f} s of arrivals left" if p.seconds_left is not None else ""
            bar.update(task, total=p.jobs, completed=p.done + p.failed,
                       description=f"jobs: {p.done} done, {p.running} running or queued, {p.failed} given up; "
                                   f"{p.points} points received{left}")

        result = run_fleet(FleetSettings(campaign, output, ray_address), on_progress)
    for line in result.lines:
        console.print(line, soft_wrap=True)
    _answer(output)
    if result.failed:  # ran, wrote what it measured, but a job was given up: as a sweep without an answer
        raise typer.Exit(3)


def _answer(output: Path) -> None:
    from ..analysis.fleet import fleet_answer, fleet_rows, read_fleet
    from ..errors import UserError
    from ..plots.tables import rich_table

    try:
        runs = read_fleet(output)
    except UserError:
        return  # nothing measured yet: nothing to answer
    console.print(rich_table(fleet_rows(runs), f"{output}: each sweep on each machine kind",
                             text_columns=("sweep", "kind", "model", "workers", "host")))
    for sentence in fleet_answer(runs):
        console.print(f"[bold]answer:[/] {sentence}", soft_wrap=True)
    console.print(f"wrote {output}/fleet.json and a run directory per job; 'staronnx report {output}' writes the "
                  "report", soft_wrap=True)
