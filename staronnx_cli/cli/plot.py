"""`staronnx plot RUN_DIR...` (or `plot COSTS.csv --kind nodes`): figures and tables from result files only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors

KINDS = ("envelope", "batches", "compare", "splits", "timeline", "nodes", "mix", "parts", "advice")


@handle_errors
def plot(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories written by staronnx sweep; with --kind nodes, costs files of staronnx profile; an "
             "advice directory of staronnx advise.")],
    kind: Annotated[str, typer.Option(
        help="envelope, batches, compare, splits, timeline; nodes: a profile's top nodes and op types, and with a "
             "CPU and a GPU costs file each node's CPU/GPU time ratio; mix: a sweep --mix run, each model's latency "
             "against the mix's scale; parts: a plan's parts as they can overlap (a branch plan's DAG); advice: an "
             "advise directory's top candidates, predicted and measured. Default: envelope, mix for a sweep --mix "
             "run, advice for an advise directory.")] = "",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Figure file: .png, .svg or .pdf "
                                                "(default: <run>/<kind>.png; nodes: <costs>_nodes.png beside the "
                                                "first costs file).")] = None,
    log: Annotated[bool, typer.Option(help="Log-scale latency axis.")] = False,
    batch_size: Annotated[int | None, typer.Option(
        help="timeline: the point's batch size; nodes: the profiled batch size (default: the largest).")] = None,
    rate: Annotated[float | None, typer.Option(help="timeline: the point's rate in queries/s.")] = None,
    table: Annotated[bool, typer.Option(help="Print the envelope and rho_max per N instead of drawing (nodes: the "
                                             "top nodes, or where the CPU is least behind the GPU).")] = False,
    format: Annotated[str, typer.Option(help="With --table: rich or md (Markdown).")] = "rich",
    top: Annotated[int, typer.Option(help="nodes: how many of the most expensive nodes to show.")] = 15,
):
    """Draw latency against throughput (per batch size, the best-N envelope, comparisons, splits, a timeline)."""
    from ..plots import figures  # matplotlib: loaded only by the commands that draw
    from ..results.read import read_runs

    chosen = bool(kind)
    kind = kind or "envelope"
    if kind not in KINDS:
        raise UserError(f"--kind '{kind}' is unknown: choose one of {', '.join(KINDS)}")
    if format not in ("rich", "md"):
        raise UserError(f"--format '{format}' is unknown: choose rich or md")
    _check_ignored(kind, table, output, format, batch_size, rate)
    if kind == "nodes":
        if log or rate is not None:
            raise UserError(f"{'--log' if log else '--rate'} does not apply to --kind nodes (a profile has no rate "
                            "and its times are drawn on linear axes): drop it")
        return _plot_nodes(runs, batch_size, output, table, format, top)
    if kind == "parts":
        return _plot_parts(runs, output)
    from ..plots.advice import is_advice

    if kind == "advice" or (not chosen and len(runs) == 1 and is_advice(runs[0])):
        return _plot_advice(runs, output, log, table)
    costs = [p for p in runs if p.is_file() and p.suffix == ".csv"]
    if costs:
        raise UserError(f"'{costs[0]}' is a costs file: draw it with --kind nodes")
    from ..fleet.run import is_fleet

    if len(runs) == 1 and is_fleet(runs[0]):  # a fleet campaign: the kinds' envelopes side by side
        return _plot_fleet(runs[0], output, log)
    loaded = read_runs(runs)
    from ..analysis.mix import is_mix
    from ..plots.mix import mix_figure

    mixes = [run for run in loaded if is_mix(run)]
    if not chosen and len(loaded) == 1 and mixes:  # one mix run: its own figure, as --kind mix
        kind = "mix"
    if kind == "mix" or mixes:
        if kind == "mix" and len(mixes) > 1:
            raise UserError(f"--kind mix draws one mix run, not {len(mixes)}: give one directory (report takes "
                            "several)")
        if kind != "mix" and len(loaded) == 1:  # one mix run, another kind asked (the default: envelope)
            raise UserError(f"'{loaded[0].path}' is a mix run: draw it, or print its table, with --kind mix")
        if kind != "mix" or len(loaded) > 1 or len(mixes) < len(loaded):
            name = (mixes or loaded)[0].path
            raise UserError(f"'{name}' {'is' if mixes else 'is not'} a mix run: --kind mix draws one mix run (sweep "
                            "--mix) and the other kinds single-model runs")
        if table:
            return _print_mix_table(loaded[0], format)
        console.print(f"wrote {figures.save(mix_figure(loaded[0], log), output or loaded[0].path / 'mix.png')}")
        return
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


def _check_ignored(kind: str, table: bool, output: Path | None, format: str, batch_size: int | None,
                   rate: float | None) -> None:
    """An option the asked kind does not use was ignored without a word (a table asked into a file printed it)."""
    if format != "rich" and not table:
        raise UserError(f"--format {format} applies to --table: add --table, or drop --format")
    if table and output is not None and kind != "nodes":
        raise UserError("-o does not apply to --table: the tables are printed; write them to a file with --table "
                        f"--format md > {output.with_suffix('.md').name}")
    if kind not in ("timeline", "nodes") and (batch_size is not None or rate is not None):
        raise UserError(f"{'--batch-size' if batch_size is not None else '--rate'} applies to --kind timeline (and "
                        f"--batch-size to --kind nodes), not to --kind {kind}: drop it")


def _plot_fleet(path: Path, output: Path | None, log: bool) -> None:
    from ..analysis.fleet import read_fleet
    from ..plots import figures

    fleet = read_fleet(path)
    labels = [f"{f.kind}: {f.sweep} ({f.run.label})" for f in fleet]
    figure = figures.compare_figure([f.run for f in fleet], labels, log, title=f"{path.name}: each sweep on each "
                                    "machine kind")
    console.print(f"wrote {figures.save(figure, output or path / 'fleet.png')}")


def _plot_advice(paths: list[Path], output: Path | None, log: bool, table: bool) -> None:
    from ..plots import figures
    from ..plots.advice import advice_figure, is_advice, read_curves

    if len(paths) != 1:
        raise UserError(f"--kind advice draws one advice directory (advise -o), not {len(paths)}: give one")
    if not is_advice(paths[0]):
        raise UserError(f"'{paths[0]}' is not an advice directory (advise -o writes advice.md there): give one to "
                        "--kind advice")
    if table:
        raise UserError(f"--table does not apply to an advice directory: its tables are in {paths[0] / 'advice.md'}")
    figure = advice_figure(read_curves(paths[0]), log)
    if figure is None:
        raise UserError(f"advice directory '{paths[0]}' has no top candidate with a predicted curve: nothing to draw "
                        "(advice.md says why)")
    console.print(f"wrote {figures.save(figure, output or paths[0] / 'advice.png')}")


def _plot_parts(paths: list[Path], output: Path | None) -> None:
    from ..plots import figures
    from ..plots.parts import parts_figure
    from ..split.plan import read_plan

    if len(paths) != 1:
        raise UserError(f"--kind parts draws one plan, not {len(paths)}: give one plan directory (split -o)")
    if paths[0].is_file() and paths[0].name != "plan.json":  # a costs file: 'not valid JSON, recreate it' misled
        raise UserError(f"'{paths[0]}' is not a plan: --kind parts draws a plan directory (split -o)"
                        + (" (a costs file draws with --kind nodes)" if paths[0].suffix == ".csv" else ""))
    plan = read_plan(paths[0])
    where = paths[0] if paths[0].is_dir() else paths[0].parent
    figure = parts_figure(plan, f"{Path(plan.source_model).stem}: {where}")
    written = figures.save(figure, output or where / "parts.png")
    console.print(f"wrote {written}")


def _print_mix_table(run, format: str) -> None:
    from ..analysis.mix import mix_summary, mix_table_rows
    from ..plots import tables

    rows, verdict = mix_table_rows(run), mix_summary(run)["verdict"]
    if format == "md":
        typer.echo(f"### {run.label}\n\n{tables.markdown(rows)}\n" + "\n".join(verdict))
        return
    console.print(tables.rich_table(rows, f"{run.label}: worst-case latency per model at each scale (ms)",
                                    text_columns=("batch sizes",)))
    for sentence in verdict:
        console.print(f"[bold]verdict:[/] {sentence}", soft_wrap=True)


def _print_tables(run, format: str) -> None:
    from ..plots import tables

    envelope_rows, rho_rows = tables.envelope_rows(run), tables.rho_rows(run)
    if format == "md":
        typer.echo(f"### {run.label}\n\n{tables.markdown(envelope_rows)}\n{tables.markdown(rho_rows)}")
        return
    console.print(tables.rich_table(envelope_rows, f"{run.label}: best batch size at each rate"))
    console.print(tables.rich_table(rho_rows, "rho_max(N): highest uncongested rate"))


def _plot_nodes(paths: list[Path], batch_size: int | None, output: Path | None, table: bool, format: str,
                top: int) -> None:
    from ..plots import figures, nodes, tables

    if top < 1:
        raise UserError(f"--top {top}: show at least one node, e.g. --top 15")
    loaded = nodes.read_node_times(paths)
    batch, note = nodes.pick_batch(loaded, batch_size)
    for line in (note, nodes.launch_time_note(loaded, batch)):
        if line:
            console.print(f"[yellow]note:[/] {line}", soft_wrap=True)
    if table:
        rows = nodes.node_rows_for_table(loaded, batch, top)
        title = f"{loaded[0].model_name}, batch {batch}: " + (
            "nodes where the CPU is least behind the GPU" if len(loaded) == 2 else
            f"top {top} nodes on {loaded[0].device} ({loaded[0].clock(batch)})")
        if format == "md":
            typer.echo(f"### {title}\n\n{tables.markdown(rows)}")
        else:
            console.print(tables.rich_table(rows, title, text_columns=("node", "op")))
        return
    first = loaded[0].path
    written = figures.save(nodes.nodes_figure(loaded, batch, top),
                           output or first.with_name(f"{first.stem}_nodes.png"))
    console.print(f"wrote {written}")
