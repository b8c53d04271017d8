"""`staronnx split MODEL`: METIS / topological partitions at a target offload fraction, or a DAG of parallel
branches (--method branches) -> a verified plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import INPUT_DATA_HELP, SHAPE_HELP, console, handle_errors, resolve_model


def _kib(size: int) -> str:
    if size < 1024:  # 40 bytes read '0.0 KiB'
        return f"{size:,} B"
    return f"{size / 1024:,.1f} KiB" if size < 1 << 20 else f"{size / (1 << 20):,.2f} MiB"


@handle_errors
def split(
    model: Annotated[str, typer.Argument(help="An .onnx file, or a zoo model name.")],
    costs: Annotated[Path | None, typer.Option(help="costs.csv of 'staronnx profile' (default: profile now).")] = None,
    offload: Annotated[float, typer.Option(help="Compute fraction moved to later part(s), in (0, 1).")] = 0.1,
    parts: Annotated[int, typer.Option(help="Number of parts (a chain).")] = 2,
    method: Annotated[str, typer.Option(
        help="metis, topo, or both (keep the better): a chain at --offload; branches: a DAG of parallel branches "
             "(Opara's streams; --parts and --offload do not apply).")] = "both",
    streams: Annotated[int, typer.Option(help="branches: the most chains of nodes run at once.")] = 2,
    min_part_us: Annotated[float, typer.Option(
        help="branches: a part that takes less (us, on the costs' device) joins a neighbour: a task costs time "
             "too.")] = 50.0,
    batch: Annotated[int, typer.Option(help="Batch size whose times and tensor bytes weigh the graph.")] = 1,
    device: Annotated[str | None, typer.Option(help="Which device's times in COSTS (default: its first).")] = None,
    seeds: Annotated[int, typer.Option(help="METIS seeds tried; the best repaired one is kept.")] = 8,
    tolerance: Annotated[float, typer.Option(help="Accepted distance to the target fraction.")] = 0.03,
    check: Annotated[bool, typer.Option("--verify/--no-verify", help="Run parts vs the full model.")] = True,
    verify_tolerance: Annotated[float, typer.Option(
        help="Largest difference accepted, relative to the largest output (never below 4 steps of the outputs' "
             "float type: float16 rounds at each cut).")] = 1e-4,
    output: Annotated[Path, typer.Option("-o", "--output", help="Plan directory to write.")] = Path("plan"),
    force: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
    allow_host_times: Annotated[bool, typer.Option(
        help="Cut a GPU split on host launch times (costs profiled on CUDA without CUPTI): the fraction is then of "
             "launch time, not of GPU time.")] = False,
    shape: Annotated[list[str] | None, typer.Option(help=SHAPE_HELP)] = None,
    input_data: Annotated[str, typer.Option(help=INPUT_DATA_HELP + " Profiled, probed and verified on it.")] = "random",
):
    """Split MODEL into an acyclic chain of parts (or a DAG of branches) and write PLAN_DIR/plan.json +
    part_<i>.onnx."""
    from rich.table import Table

    from ..inputdata import parse_input_data
    from ..split.splitter import SplitSettings, run_split

    settings = SplitSettings(model=resolve_model(model, shape), output=output, costs=costs, offload=offload,
                             parts=parts, method=method, batch=batch, device=device, seeds=seeds, tolerance=tolerance,
                             check=check, check_tolerance=verify_tolerance, force=force,
                             allow_host_times=allow_host_times, streams=streams, min_part_us=min_part_us,
                             input_data=parse_input_data(input_data))
    with console.status("splitting") as status:
        result = run_split(settings, lambda text: status.update(text))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    plan = result.plan
    what = (f"branches in at most {streams} streams, batch {batch}, fractions of {plan.fraction_of}"
            if method == "branches" else
            f"methods at offload {offload} ({parts} parts, batch {batch}, fractions of {plan.fraction_of})")
    methods = Table(title=what)
    for column in ("method", "best of", "achieved fraction", "cut per batch", ""):
        methods.add_column(column, justify="right" if "fraction" in column or "cut" in column else "left")
    for c in result.candidates:
        kept = "kept" if c is result.chosen else ""
        methods.add_row(c.method, c.detail, f"{c.fraction:.3f}", _kib(c.cut_bytes), kept)
    console.print(methods)
    table = Table(title=f"plan: {output}/plan.json")
    for column in ("part", "nodes", "estimated us", "share", "first node", "last node"):
        table.add_column(column, justify="right" if column in ("part", "nodes", "estimated us", "share") else "left")
    for p, names in zip(plan.parts, result.part_nodes):
        table.add_row(str(p.index), str(p.nodes), f"{p.estimated_us.get(plan.device, 0):,.0f}", f"{p.share:.1%}",
                      names[0], names[-1])
    console.print(table)
    cuts = Table(title="tensors between parts")
    for column in ("from", "to", "tensor", "bytes at batch 1"):  # a tensor without a batch axis: per batch
        cuts.add_column(column, justify="right" if column in ("from", "to", "bytes at batch 1") else "left")
    specs = {t.name: t for p in plan.parts for t in p.inputs}
    for edge in plan.edges:
        for name in edge.tensors:
            spec = specs[name]
            cuts.add_row("input" if edge.source < 0 else str(edge.source), str(edge.target), name,
                         _kib(spec.bytes_per_sample + spec.fixed_bytes))
    console.print(cuts)
    if plan.dag:
        d = plan.dag
        console.print(f"branch plan: width {d['width']} (the most nodes that can run at once), {len(plan.parts)} "
                      f"parts in {min(d['streams'], d['width'])} streams; critical path "
                      f"{d['critical_path_us']:,.0f} us of {d['total_us']:,.0f} us of work: parallelism "
                      f"{d['parallelism']:.2f}x (the nodes' own "
                      f"critical path: {d['node_critical_path_us']:,.0f} us); cut {_kib(plan.cut_bytes)} per batch of "
                      f"{batch}")
    else:
        console.print(f"achieved offload {result.chosen.fraction:.3f} of {plan.fraction_of} "
                      f"(target {plan.target_fraction}), "
                      f"cut {_kib(plan.cut_bytes)} per batch of {batch}, method {plan.method} ({plan.detail})")
    if plan.verification:
        v = plan.verification
        skipped = v.get("not_compared") or []
        console.print(f"verified: parts run in order = full model on a batch of {v['batch']}, max abs diff "
                      f"{v['max_abs_diff']:.3g} (tolerance {v['tolerance']:.3g})"
                      + (f"; not compared (not tensors): {', '.join(skipped)}" if skipped else ""), soft_wrap=True)
        if v.get("no_finite_output"):  # NaN equals NaN there: the check compared nothing
            console.print("[yellow]note:[/] every output of the model is NaN or infinite on these inputs, so the "
                          "verification compared nothing: verify on inputs it computes numbers for (--input-data)",
                          soft_wrap=True)
