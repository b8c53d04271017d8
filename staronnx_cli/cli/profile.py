"""`staronnx profile MODEL`: per-node execution times from ONNX Runtime's profiler -> costs.csv."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UserError
from .common import (
    INPUT_DATA_HELP,
    SHAPE_HELP,
    console,
    handle_errors,
    parse_int_list,
    refuse_measured_file,
    resolve_model,
)

if TYPE_CHECKING:
    from ..profile.profiler import BatchProfile, ProfileSettings


@handle_errors
def profile(
    model: Annotated[str, typer.Argument(help="An .onnx file, or a zoo model name (see 'staronnx zoo list').")],
    device: Annotated[str, typer.Option(help="cpu, cpu:THREADS, cuda or cuda:ID.")] = "cpu",
    batch: Annotated[str, typer.Option(help="Batch sizes, comma separated.")] = "1",
    runs: Annotated[int, typer.Option(help="Measured runs per batch size.")] = 20,
    warmup: Annotated[int, typer.Option(help="Runs dropped before measuring.")] = 3,
    opt_level: Annotated[str, typer.Option(
        help="ORT graph optimisation level to profile at: basic keeps node names (exact per-node times); "
             "extended/all fuse more and times of fused nodes are shared by a work estimate.")] = "basic",
    written: Annotated[str, typer.Option("-o", "--output", help="Costs CSV to write.")] = "costs.csv",
    overhead: Annotated[bool, typer.Option(help="Also time runs without the profiler and at level all.")] = True,
    top: Annotated[int, typer.Option(help="Nodes shown in the summary.")] = 12,
    force: Annotated[bool, typer.Option(help="Overwrite OUTPUT if it exists.")] = False,
    shape: Annotated[list[str] | None, typer.Option(help=SHAPE_HELP)] = None,
    input_data: Annotated[str, typer.Option(help=INPUT_DATA_HELP)] = "random",
):
    """Profile MODEL node by node and write costs.csv (plus costs.meta.json)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..devices import parse_device
    from ..inputdata import parse_input_data
    from ..outputfile import ready_to_write
    from ..profile.costs import meta_path
    from ..profile.profiler import ProfileSettings, profile_model, write_profile

    if opt_level not in ("basic", "extended", "all"):
        raise UserError(f"--opt-level '{opt_level}': choose basic, extended or all")
    resolved = resolve_model(model, shape)
    if not resolved.exists():
        raise UserError(f"model file '{model}' not found: give an .onnx file or a zoo name (staronnx zoo list)")
    output = Path(written)
    if written.endswith(("/", os.sep)) or output.is_dir():  # 'newdir/' was a file named newdir, an existing
        # folder was found only after profiling, when the CSV could not be written
        raise UserError(f"-o '{written}' names a directory: profile writes a CSV file, e.g. -o {output / 'costs.csv'}")
    refuse_measured_file(output)
    if output.exists() and not force:
        raise UserError(f"'{output}' already exists: choose another -o or add --force to overwrite it")
    ready_to_write(output)  # before the profiling runs, not after them
    settings = ProfileSettings(resolved, parse_device(device), parse_int_list(batch, "--batch"),
                               runs, warmup, opt_level, overhead, parse_input_data(input_data))
    total = len(settings.batch_sizes) * (settings.runs + settings.warmup)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"profiling on {settings.device}", total=total)
        done: dict[int, int] = {}

        def on_run(batch_size: int, run: int, _total: int):
            done[batch_size] = run
            bar.update(task, completed=sum(done.values()), description=f"profiling batch {batch_size}")

        result = profile_model(settings, on_run)
    if result.note:
        console.print(f"[yellow]note:[/] no GPU clock: {escape(result.note)}. Node times are host launch times "
                      "(timing host-launch): 'staronnx split' refuses them unless given --allow-host-times",
                      soft_wrap=True)
    if result.whole_inputs:
        console.print(f"note: {', '.join(repr(n) for n in result.whole_inputs)} "
                      f"{'has' if len(result.whole_inputs) == 1 else 'have'} no batch axis: each batch gets "
                      f"{'it' if len(result.whole_inputs) == 1 else 'them'} whole, one value for all its queries "
                      "(the same in sweep)", soft_wrap=True)
    rows = write_profile(output, settings, result)
    for r in result.batches:
        for line in r.notes:
            console.print(f"note: batch {r.batch_size}: {escape(line)}", soft_wrap=True)
    for r in result.batches:
        render_summary(r, settings, top)
    console.print(f"wrote {output} ({len(rows)} rows) and {meta_path(output)}; "
                  f"draw it with 'staronnx plot {output} --kind nodes'", soft_wrap=True)


def render_summary(result: BatchProfile, settings: ProfileSettings, top: int) -> None:
    import pandas as pd
    from rich.markup import escape
    from rich.table import Table

    from ..profile.attribution import estimated_group_warning
    from ..profile.costs import CLOCK_WORDS
    from ..profile.steadiness import profile_warnings, stalled_nodes_warning
    from ..zoo.names import typed_name

    frame = pd.DataFrame(result.rows)
    total = frame["mean_us"].sum() or 1.0
    table = Table(title=f"{typed_name(settings.model)}: top {top} nodes, batch {result.batch_size} on "
                        f"{settings.device} (level {settings.opt_level}, {CLOCK_WORDS[result.timing]})")
    for column in ("node", "op", "mean us", "std us", "share", "attributed"):
        table.add_column(column, justify="right" if column in ("mean us", "std us", "share") else "left")
    for _, row in frame.nlargest(top, "mean_us").iterrows():
        table.add_row(row["node"], row["op_type"], f"{row['mean_us']:.1f}", f"{row['std_us']:.1f}",
                      f"{100 * row['mean_us'] / total:.1f} %", row["how"])
    console.print(table)
    by_op = frame.groupby("op_type")["mean_us"].agg(["sum", "count"]).sort_values("sum", ascending=False)
    ops = Table(title="time per op type")
    for column in ("op type", "nodes", "total us", "share"):
        ops.add_column(column, justify="left" if column == "op type" else "right")
    for op, row in by_op.iterrows():
        ops.add_row(op, str(int(row["count"])), f"{row['sum']:.1f}", f"{100 * row['sum'] / total:.1f} %")
    console.print(ops)
    end_to_end = result.end_to_end_us
    if result.gpu is not None:
        _render_gpu(result)
    else:
        console.print(f"batch {result.batch_size}: end-to-end {end_to_end / 1000:.3f} ms per run (profiled, mean of "
                      f"{len(result.run_us)}), sum of nodes {result.node_sum_us / 1000:.3f} ms = "
                      f"{100 * result.node_sum_us / end_to_end:.1f} % of end-to-end"
                      + (" (host launch times)" if result.timing == "host-launch" else ""))
    if result.plain_run_us:
        plain = statistics.median(result.plain_run_us)
        full = statistics.median(result.full_opt_run_us)
        console.print(f"  profiler overhead: {100 * (statistics.median(result.run_us) / plain - 1):+.1f} % (medians: "
                      f"unprofiled {plain / 1000:.3f} ms); level all runs in {full / 1000:.3f} ms "
                      f"= {100 * full / plain:.0f} % of level {settings.opt_level}")
    stalled = stalled_nodes_warning(result.batch_size, result.rows)
    estimated = estimated_group_warning(result.batch_size, result.rows) if settings.opt_level == "basic" else ""
    for warning in profile_warnings(result.batch_size, result.run_us, result.plain_run_us, result.full_opt_run_us,
                                    settings.opt_level) + [w for w in (stalled, estimated) if w]:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def _render_gpu(result: BatchProfile) -> None:
    g = result.gpu
    if g is None:
        return
    kernel = statistics.fmean(g.kernel_us)
    console.print(f"batch {result.batch_size}: GPU time per run {kernel / 1000:.3f} ms ({g.kernels_per_run:.0f} "
                  f"kernels, CUPTI, mean of {len(g.kernel_us)}); sum of nodes {result.node_sum_us / 1000:.3f} ms = "
                  f"{100 * result.node_sum_us / kernel:.1f} % of it; {100 * g.attributed_fraction:.1f} % of GPU time "
                  f"attributed; ORT's input/output copies {statistics.fmean(g.outside_us) / 1000:.3f} ms; "
                  f"host: end-to-end {result.end_to_end_us / 1000:.3f} ms, launch times sum "
                  f"{sum(r['host_us'] for r in result.rows) / 1000:.3f} ms", soft_wrap=True)
    if g.profiler_ratio and g.plain_kernel_us:
        console.print(f"  GPU time with ORT's profiler on / CUPTI alone: {g.profiler_ratio:.3f} "
                      f"({g.plain_kernel_us / 1000:.3f} ms per run without the profiler)")
