"""`staronnx advise MODEL --rate R`: which batch size, split and worker layout to run at R queries/s, searched in
simulation, confirmed for real."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import UserError
from .common import INPUT_DATA_HELP, NO_ANSWER, SHAPE_HELP, console, handle_errors, parse_int_list, resolve_model


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{option} '{text}': give numbers separated by commas, e.g. {option} 40,80") from None
    if not values and (text or option != "--rate"):  # '' is --rate's default, said by its own check; --offload ''
        raise UserError(f"{option} '{text}' is empty: give numbers separated by commas, e.g. {option} 0.1,0.2"
                        + (" (--offload 0 searches the whole model only)" if option == "--offload" else ""))
    return values


@handle_errors
def advise(
    model: Annotated[str, typer.Argument(help="An .onnx file or a zoo model name (with --platform, also a plan "
                                               "directory whose times the platform holds).")],
    rate: Annotated[str, typer.Option(help="The target rate(s) in queries/s, comma separated.")] = "",
    latency_bound: Annotated[float | None, typer.Option(
        help="ms: only candidates whose worst-case latency stays under it.")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes searched (larger ones only while they could still "
                                            "win).")] = "1,2,4,8,16,32,64",
    offload: Annotated[str, typer.Option(help="Splits searched beside the whole model: fractions of the compute "
                                              "moved to a second part; 0 for none.")] = "0.05,0.1,0.15",
    parts: Annotated[str, typer.Option(help="Each split as a chain of this many parts (2 to 8), comma "
                                            "separated.")] = "2,3",
    streams: Annotated[str, typer.Option(help="Branch plans searched beside the whole model (split --method "
                                              "branches): streams of each, comma separated; 0 for none.")] = "2",
    policy: Annotated[str, typer.Option(help="Policies compared on layouts of several workers.")] = "dmda,eager",
    platform: Annotated[Path | None, typer.Option(help="Advise for the machine of a platform file (simulated "
                                                       "only) instead of this one.")] = None,
    trust_platform: Annotated[bool, typer.Option(help="Use the --platform's times although they were captured "
                                                      "from another file of the same split (made again here); "
                                                      "said in advice.md.")] = False,
    budget_s: Annotated[float, typer.Option(help="Seconds the whole advise may take: calibration and search (larger "
                                                 "N left out when they would not fit) and real confirmation "
                                                 "(candidates that would not fit left unmeasured, said); refused at "
                                                 "once when its least possible time does not fit.")] = 600.0,
    max_layouts: Annotated[int, typer.Option(help="With --platform: the most worker layouts (distinct subsets of "
                                                  "its worker groups) searched; more is refused before any is "
                                                  "built.")] = 64,
    confirm: Annotated[bool, typer.Option(help="Confirm the top 3 candidates at each rate with short real "
                                               "sweeps.")] = True,
    confirm_batches: Annotated[int, typer.Option(help="Measured batches per confirmation point.")] = 30,
    recalibrate: Annotated[bool, typer.Option(help="Drop this host's cached task times of the model and its splits "
                                                   "and measure them afresh (a note says when they look learnt on "
                                                   "a busy machine).")] = False,
    batches: Annotated[int, typer.Option(help="Measured batches per simulated point.")] = 50,
    jobs: Annotated[int, typer.Option(help="Processes simulating candidates (0: one per usable core).")] = 0,
    ray: Annotated[bool, typer.Option(help="Simulate on a Ray cluster (the \\[ray] extra) instead of local "
                                           "processes; the real confirmation runs on this machine, or with "
                                           "--platform on a node with the platform's \\[ray] resources.")] = False,
    ray_address: Annotated[str | None, typer.Option(help="With --ray: the cluster's address (default: the cluster "
                                                         "'ray start' began on this machine, if one runs; else Ray "
                                                         "started here).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of inputs and simulated noise.")] = 0,
    output: Annotated[Path, typer.Option("-o", "--output", help="The advice directory.")] = Path("results/advice"),
    force: Annotated[bool, typer.Option(help="Replace an advice in the directory.")] = False,
    shape: Annotated[list[str] | None, typer.Option(help=SHAPE_HELP)] = None,
    input_data: Annotated[str, typer.Option(help=INPUT_DATA_HELP + " Profiled, split, calibrated and confirmed on "
                                                 "it.")] = "random",
):
    """Search batch sizes, splits, worker layouts and policies in simulation for the target rate(s), confirm the
    best for real, and write advice.md, candidates.csv and advice.png."""
    from ..advise.answer import headline, top_rows
    from ..advise.run import AdviseSettings
    from ..advise.run import advise as run_advise
    from ..inputdata import parse_input_data
    from ..plots.tables import rich_table
    from ..zoo.names import model_name_of

    offloads = tuple(f for f in _floats(offload, "--offload") if f != 0)
    if shape and Path(model).is_dir():
        raise UserError(f"--shape applies to a model: the parts of plan '{model}' have the sizes split gave them")
    resolved = resolve_model(model, shape)
    settings = AdviseSettings(
        resolved, output, _floats(rate, "--rate"), model_name_of(model, resolved if shape else Path(model)),
        latency_bound,
        tuple(parse_int_list(batch, "--batch")), offloads, tuple(parse_int_list(parts, "--parts", "2,3")),
        tuple(dict.fromkeys(p.strip() for p in policy.split(",") if p.strip())),  # dmda,dmda: once
        platform, trust_platform, budget_s, max_layouts, batches, confirm=confirm, confirm_batches=confirm_batches,
        streams=tuple(k for k in parse_int_list(streams, "--streams", "2,4") if k != 0),
        jobs=jobs, ray=ray, ray_address=ray_address, seed=seed, force=force, recalibrate=recalibrate,
        command=shlex.join(["staronnx", *sys.argv[1:]]), input_data=parse_input_data(input_data))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..advise.run import check

    check(settings)  # every mistake is one line here, before the progress bar

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stage]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("preparing", total=None, stage="")

        def on_step(text: str) -> None:
            bar.console.print(f"[dim]{escape(text)}[/]")
            bar.update(task, description=escape(text[:50]))

        advice = run_advise(settings, on_step, lambda stage, done, total: bar.update(
            task, completed=done, total=total or None, stage=stage))
    if advice.confirmed:
        console.print(rich_table(top_rows(advice.confirmed), "the top candidates, predicted and measured",
                                 text_columns=("runs", "workers", "policy")))
    for rec in advice.recommendations:
        console.print(f"[bold]advice:[/] {escape(headline(rec))}", soft_wrap=True)
        if rec.get("comparison"):
            console.print(f"  [dim]why:[/] {escape(rec['comparison'])}", soft_wrap=True)
    result = advice.result
    console.print(f"{result.simulated} (candidate, rate) points simulated, {sum(result.pruned.values())} pruned, in "
                  f"{result.seconds:.1f} s; wrote {', '.join(str(f) for f in advice.files)}", soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    recs = advice.recommendations
    if recs and all(rec["setup"] is None for rec in recs):
        others = " (and at every other rate)" if len(recs) > 1 else ""
        fix = "; raise --latency-bound" if recs[0]["why"].startswith("no candidate meets") \
            else "; give lower rates"
        raise UserError(f"{recs[0]['why']}{others}: advice in {output}{fix}")
    unmet = [r for r in recs if r.get("congested_for_real") or r.get("over_bound")]
    if unmet:  # the advice is written, but this machine did not deliver it: as a sweep without an uncongested point
        what = "measured above --latency-bound" if all(r.get("over_bound") for r in unmet) else \
            "not measured keeping up"
        rates = ", ".join(f"{r['rate_qps']:g}" for r in unmet)
        console.print(f"{output}: at {rates} q/s the advice was {what} on "
                      f"this machine (exit code {NO_ANSWER}): advise again on a quiet machine, or at lower rates",
                      soft_wrap=True)
        raise typer.Exit(NO_ANSWER)
