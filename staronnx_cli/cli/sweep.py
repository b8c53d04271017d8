"""`staronnx sweep MODEL|PLAN_DIR`: fixed-rate query streams through the runtime over batch sizes x rates."""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..errors import UserError
from .common import INPUT_DATA_HELP, NO_ANSWER, SHAPE_HELP, console, handle_errors, parse_int_list, resolve_model

if TYPE_CHECKING:
    from ..sweep.settings import SweepSettings


@handle_errors
def sweep(
    target: Annotated[str | None, typer.Argument(
        help="An .onnx file, a zoo model name, or a plan directory from split (none with --mix).")] = None,
    workers: Annotated[str | None, typer.Option(
        help="cpu:GxK (G workers of K cores each), cpu:K, cuda:ID, cuda:IDxW (W workers on one GPU), or auto; "
             "mix them with commas: cuda:0,cpu:1x15 (a GPU and 15 cores), cpu:1x1,cpu:1x1 (one worker per part "
             "of a 2-part plan). Default cpu:1x2; a --platform has its own.")
    ] = None,
    policy: Annotated[str | None, typer.Option(
        help="eager, roundrobin, dmda, deadline (earliest deadline first on each model's latency target, placed as "
             "dmda), opara (a branch plan's launch order, placed as dmda), or static:KIND,KIND. Default dmda "
             "(system staronnx only).")] = None,
    batch: Annotated[str | None, typer.Option(help="Batch sizes, comma separated (default 1,2,4; a mix sets its "
                                                   "own).")] = None,
    rate: Annotated[str | None, typer.Option(
        help="Rates in queries/s: auto (fitted to each batch size's measured capacity, then its saturation found "
             "to a 3 % step), auto,R1,R2 (and these rates for every batch size), START:STOP:STEP, or a list (default "
             "auto; a mix sets its own).")] = None,
    mix: Annotated[Path | None, typer.Option(
        help="A mix file (TOML): several models served together on the same workers, each with its rate, batch "
             "size(s), latency target and priority (docs/mix.md).")] = None,
    scale: Annotated[str, typer.Option(help="--mix: multipliers of every model's rate, START:STOP:STEP or a list "
                                            "(the sweep's axis).")] = "0.5:2:0.5",
    vary: Annotated[str | None, typer.Option(help="--mix: scale this model's rate only, the others at their own.")
                    ] = None,
    memory_limit: Annotated[str | None, typer.Option(
        help="--mix: what each worker's sessions may hold, e.g. cuda:0=8GiB,cpu=2GiB; a mix that cannot fit is "
             "refused before the first point (GPU sessions' arenas are capped, CPU ones checked).")] = None,
    batches: Annotated[int, typer.Option(help="Measured batches per point (paper: 50).")] = 50,
    warmup: Annotated[int, typer.Option(help="Warm-up batches per point, not measured.")] = 5,
    arrival: Annotated[str, typer.Option(help="Arrival process: fixed (the paper's), poisson (seeded), or "
                                              "trace:FILE (one time in s per line, scaled to each rate).")] = "fixed",
    max_queue_delay: Annotated[float | None, typer.Option(
        help="Triton-style dynamic batching: a batch also closes when its first query has waited this many ms "
             "(default: wait for N queries, as in the paper).")] = None,
    system: Annotated[str, typer.Option(help="staronnx (the runtime), native (one ORT session, FIFO plain loop), "
                                             "ortparallel (native in ORT's parallel mode: independent nodes at "
                                             "once, a thread per core), ortstreams (native on ORT's logic "
                                             "streams, one per group of a branch PLAN), roundrobin (whole model on "
                                             "the first free worker), or triton.")] = "staronnx",
    seed: Annotated[int, typer.Option(help="Seed of the random inputs and Poisson arrivals, recorded.")] = 0,
    calibrate: Annotated[bool, typer.Option(help="Calibrate the performance models afresh (default: reuse "
                                                 "this host's models of this model, if any).")] = False,
    max_memory: Annotated[float | None, typer.Option(
        help="GiB a sweep may hold (schedules, batch records, input batches), checked before it starts "
             "(default: half this machine's memory).")] = None,
    max_hours: Annotated[float, typer.Option(
        help="Hours the queries of a real sweep may take to arrive, checked before it starts (a guard against a "
             "typo such as --batch 100000).")] = 24.0,
    cuda_graphs: Annotated[bool, typer.Option(
        help="GPU workers run parts whose shapes are static at the batch size as CUDA graphs (checked against "
             "the plain session when the worker is prepared); --no-cuda-graphs to compare.")] = True,
    engine: Annotated[str, typer.Option(help="real (run ONNX Runtime) or sim (the same scheduler on a virtual "
                                             "clock, times from --platform or this host's models).")] = "real",
    platform: Annotated[Path | None, typer.Option(help="sim: a platform file (TOML) describing the machine.")] = None,
    sim_noise: Annotated[bool, typer.Option(help="sim: draw task times from the models' std (seeded).")] = False,
    trust_platform: Annotated[bool, typer.Option(help="sim: use the --platform's task times although they were "
                                                      "captured from another file of the same split (made again "
                                                      "here); recorded in run.json.")] = False,
    triton_port: Annotated[int, typer.Option(help="triton: gRPC port on 127.0.0.1 (HTTP +1, metrics +2); "
                                                  "0 picks free ports.")] = 0,
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory.")] = Path("results/run"),
    resume: Annotated[bool, typer.Option(help="Continue a run: skip the points already in points.csv.")] = False,
    force: Annotated[bool, typer.Option(help="Start the run directory over.")] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary (verdict, best batch sizes, "
                                                               "rho_max, warnings) as JSON on stdout; "
                                                               "progress goes to stderr.")] = False,
    slo: Annotated[str | None, typer.Option(
        help="A latency objective, e.g. 'p99<=5', quoted (metrics: mean-max, p50, p90, p95, p99, max; ms): the "
             "verdict opens with the highest rate where a batch size met it, and which (--json: slo).")] = None,
    shape: Annotated[list[str] | None, typer.Option(help=SHAPE_HELP)] = None,
    input_data: Annotated[str | None, typer.Option(help=INPUT_DATA_HELP + " Recorded in run.json.")] = None,
):
    """Replay query streams (fixed rate by default) and write run.json, batches.csv and points.csv, point by
    point."""
    with _progress_on_stderr(json_summary):  # stdout carries only the JSON then
        from ..inputdata import parse_input_data
        from ..runtime.workers import canonical_workers
        from ..sweep.grid import parse_rate_option
        from ..sweep.runner import SweepSettings, prepare_sweep
        from ..zoo.names import model_name_of

        if workers is not None and platform is not None:
            raise UserError(f"--workers {workers} and --platform {platform}: the platform file says which workers "
                            "the simulated machine has; drop one of them")
        if trust_platform and platform is None:
            raise UserError("--trust-platform vouches for a platform file's times: give --platform P.toml too")
        for flag, given, example in (("--workers", workers, "cpu:1x2"), ("--batch", batch, "1,2,4"),
                                     ("--policy", policy, "dmda"), ("--rate", rate, "auto")):
            if given is not None and not given.strip():  # an empty shell variable: not the default, said
                raise UserError(f"{flag} is empty: give e.g. {flag} {example}, or leave it out for that default")
        workers = canonical_workers(workers or "cpu:1x2")
        if system != "staronnx" and policy is not None:  # a baseline places queries its own way: it was recorded
            raise UserError(f"--policy {policy} applies to --system staronnx: --system {system} places queries its "
                            "own way (docs/sweep.md); drop --policy")  # as eager or fifo, the option dropped unsaid
        policy = policy or "dmda"
        invoked = sys.argv[1:2] == ["sweep"]  # else called as a function (a script, a test): said in words
        shared = SweepSettings(
            Path(), output, workers=workers, policy=policy, batches=batches, warmup=warmup, arrival=arrival,
            max_queue_delay_ms=max_queue_delay, system=system, seed=seed, calibrate=calibrate, cuda_graphs=cuda_graphs,
            max_memory_gib=max_memory, max_hours=max_hours, engine=engine, platform=platform, sim_noise=sim_noise,
            trust_platform=trust_platform, triton_port=triton_port, resume=resume, force=force,
            command=shlex.join(["staronnx", *sys.argv[1:]]) if invoked else "")
        from ..analysis.slo import parse_slo

        objective = parse_slo(slo) if slo is not None else None  # checked before anything runs
        if mix is not None:
            extra: tuple[tuple[str, object], ...] = (("--trust-platform", trust_platform or None), ("--batch", batch),
                                                     ("--rate", rate), ("--slo", slo), ("--shape", shape or None),
                                                     ("--input-data", input_data), (str(target), target))
            for option, value in extra:
                if value is not None:
                    _refuse_with_mix(option, value is target)
            return _sweep_mix(MixOptions(replace(shared, target=mix, command=shared.command or
                                                 f"staronnx sweep --mix {mix}", model_name=mix.stem),
                                         scale, vary, memory_limit, json_summary))
        if target is None:
            raise UserError("sweep needs a model (an .onnx file, a zoo name or a plan directory), or --mix MIX.toml")
        for option, value in (("--scale", scale != "0.5:2:0.5"), ("--vary", vary), ("--memory-limit", memory_limit)):
            if value:
                raise UserError(f"{option} applies to a mix: add --mix MIX.toml or drop {option}")
        auto, rates = parse_rate_option(rate or "auto")
        path = Path(target)
        if shape and path.is_dir():
            raise UserError(f"--shape applies to a model: the parts of plan '{target}' have the sizes split gave "
                            "them (split MODEL --shape ...)")
        resolved = path if path.is_dir() else resolve_model(target, shape)
        settings = replace(
            shared, target=resolved, input_data=parse_input_data(input_data or "random"),
            batch_sizes=tuple(parse_int_list(batch or "1,2,4", "--batch")), auto_rates=auto, rates=rates,
            model_name=model_name_of(target, resolved if shape else path),
            command=shared.command or " ".join(["staronnx sweep", target, *_echo(engine, platform, workers)]))
        prepared = prepare_sweep(settings)  # every mistake is one line here, before the progress bar
        for warning in prepared.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        try:
            _run_with_progress(settings, prepared)
        except KeyboardInterrupt:
            raise UserError(interrupted(output), exit_code=130) from None
        if not render_answer(output, json_summary, objective):
            raise typer.Exit(NO_ANSWER)


@dataclass(frozen=True)
class MixOptions:
    """What `sweep --mix` was given: the sweep's settings (its target the mix file) and the mix's own options."""

    sweep: SweepSettings
    scale: str
    vary: str | None
    memory_limit: str | None
    json_summary: bool


def _refuse_with_mix(option: str, is_target: bool) -> None:
    """A mix file names its models, and gives each its batch sizes and rate: a target, --batch or --rate beside it
    would be dropped; --trust-platform vouches for one model's [[times]]."""
    if option == "--trust-platform":
        raise UserError("--trust-platform applies to one model's [[times]], which a mix does not take: drop it")
    where = "the mix file names the models" if is_target else "the mix file gives each model's"
    key = {"--shape": "shape", "--input-data": "input_data"}.get(option)
    raise UserError(f"{option} with --mix: {where}" + (f" ({key} = ... in its [[model]])" if key else "") + "; drop it")


def _sweep_mix(given: MixOptions) -> None:
    """`sweep --mix`: checked in one line, then run point by point, then the answer per model."""
    from ..mix.run import MixSettings, prepare_mix, run_mix
    from ..mix.spec import parse_scales, read_mix

    mix = read_mix(given.sweep.target)
    sweep = replace(given.sweep, batch_sizes=tuple(sorted({n for m in mix.models for n in m.batch_sizes})), rates=())
    settings = MixSettings(sweep, mix, parse_scales(given.scale), given.vary, given.memory_limit)
    prepared = prepare_mix(settings, resolve_model)
    for warning in prepared.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    width = max(len(name) for name in mix.names)
    try:
        with _progress_bar() as (bar, on_progress):
            def on_point(row):
                text = point_outcome(row)
                target = row.get("latency_target_ms")
                mark = "" if target in ("", None) else "  (meets its target)" if row.get("met_target") is True else \
                    f"  (target {target:g} ms missed)"
                bar.console.print(f"scale {row['scale']:<5g} {row['model']:<{width}} N={row['batch_size']:<3} "
                                  f"{row['rate_qps']:>8.4g} q/s  {escape(text)}{mark}", soft_wrap=True)

            run_mix(settings, prepared, on_point, on_progress,
                    lambda text: bar.console.print(notice_line(text), soft_wrap=True))
    except KeyboardInterrupt:
        raise UserError(interrupted(settings.sweep.output), exit_code=130) from None
    if not render_mix_answer(settings.sweep.output, given.json_summary):
        raise typer.Exit(NO_ANSWER)


def interrupted(output: Path) -> str:
    """The line a Ctrl-C ends a sweep with: where its finished points are (if any), and how to go on."""
    import csv

    points = output / "points.csv"
    try:
        with points.open(newline="") as f:  # a mix point has a row per model: (scale, mix) tells points apart
            finished = len({(r.get("scale") or i, r.get("mix") or "") for i, r in enumerate(csv.DictReader(f))})
    except (OSError, csv.Error):
        finished = 0
    if not finished:
        return "interrupted before any point finished; start it again with the same command and --resume"
    what = "1 point finished so far is" if finished == 1 else f"{finished} points finished so far are"
    return f"interrupted: the {what} in {points}; continue with the same command and --resume"


def render_mix_answer(output: Path, as_json: bool = False) -> bool:
    """Per model, its worst-case latency at each scale against its target; the largest scale meeting every
    target, in words (or as JSON on stdout); False when no scale meets every target."""
    import json

    from ..analysis.mix import mix_summary, mix_table_rows
    from ..plots import tables
    from ..results.read import read_run

    run = read_run(output)
    data = mix_summary(run)
    if as_json:
        typer.echo(json.dumps({**data, "exit_code": 0 if data["answered"] else NO_ANSWER}, indent=2))
        return data["answered"]
    console.print(tables.rich_table(mix_table_rows(run), f"{output}: worst-case latency per model (mean over "
                                    "batches of each batch's max latency, ms) at each scale of the mix"))
    for sentence in data["verdict"]:
        console.print(f"[bold]verdict:[/] {escape(sentence)}", soft_wrap=True)
    return data["answered"]


@contextmanager
def _progress_bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[batches]}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal) as bar:  # piped: results only, no last frame of the bar
        task = bar.add_task("preparing", total=None, batches="")

        def on_progress(p):
            bar.update(task, description=p.point or "preparing", completed=p.seconds_done,
                       total=p.seconds_total or None, batches=f"{p.batches_done}/{p.batches_total} batches")

        yield bar, on_progress


@contextmanager
def _progress_on_stderr(on: bool):
    console.stderr = on
    try:
        yield
    finally:
        console.stderr = False


def _run_with_progress(settings, prepared) -> None:
    """A bar over the seconds of scheduled arrivals (its ETA divides those), labelled in batches."""
    from ..sweep.runner import run_sweep

    with _progress_bar() as (bar, on_progress):
        skipped: list[dict] = []  # a batch size's rates not run after a congested one: one line for all of them

        def say_skipped():
            if skipped:
                first, last = skipped[0], skipped[-1]
                rates = f"{first['rate_qps']:>8g} q/s " if len(skipped) == 1 else \
                    f"{len(skipped)} rates, {first['rate_qps']:g} to {last['rate_qps']:g} q/s,"
                bar.console.print(f"N={first['batch_size']:<3} {rates} {escape(str(first['reason']))}", soft_wrap=True)
                skipped.clear()

        def on_point(row):
            not_run = str(row.get("reason", "")).startswith("not run")
            if not (not_run and skipped and skipped[0]["batch_size"] == row["batch_size"]):
                say_skipped()
            if not_run:
                skipped.append(row)
            else:
                bar.console.print(f"N={row['batch_size']:<3} {row['rate_qps']:>8g} q/s  {escape(point_outcome(row))}",
                                  soft_wrap=True)

        def on_notice(text):
            say_skipped()
            bar.console.print(notice_line(text), soft_wrap=True)

        try:
            run_sweep(settings, on_point, on_progress, prepared, on_notice)
        finally:  # Ctrl-C too: those rows are written, so said
            say_skipped()


def point_outcome(row: dict) -> str:
    """What a finished point's line says: failed, congested (why), or its latency (and its ratio to the ideal)."""
    from ..analysis.verdict import ms

    if row.get("errors") and not row.get("batches"):
        return f"failed: {row['errors']}"
    if row["congested"]:
        return f"congested: {row.get('reason', '')}"
    if row.get("mean_max_latency_ms") in ("", None):
        return "no batch measured"
    ratio = row.get("latency_over_ideal")
    parts = [row[key] for key in ("fill_ms", "wait_ms", "run_ms") if isinstance(row.get(key), float)]
    said = " = " + " + ".join(f"{ms(max(p, 0.0))} {w}" for p, w in zip(parts, ("fill", "wait", "run"))) \
        if len(parts) == 3 else ""
    return f"mean max-latency {ms(row['mean_max_latency_ms'])} ms{said}" + (f"  ({ratio:.2f} x ideal)" if ratio else "")


def notice_line(text: str) -> str:
    """What the sweep says while it runs: a note, or a warning when the text says it is one."""
    if text.startswith("warning: "):
        return f"[yellow]warning:[/] {escape(text.removeprefix('warning: '))}"
    return f"[yellow]note:[/] {escape(text)}"




def render_answer(output: Path, as_json: bool = False, slo=None) -> bool:
    """The best batch size at each rate, rho_max per batch size, the verdict in words and the noise warnings
    (or all of it as JSON on stdout); False when there is no answer (every point congested or failed)."""
    import json

    from ..analysis.summary import summary
    from ..analysis.verdict import every_point_failed
    from ..plots import tables
    from ..results.read import read_run

    run = read_run(output)
    data = summary(run, slo)
    if as_json:
        typer.echo(json.dumps({**data, "exit_code": 0 if data["answered"] else NO_ANSWER}, indent=2))
        return data["answered"]
    if data["answered"]:
        console.print(tables.rich_table(tables.envelope_rows(run), f"{output}: best batch size N* at each rate "
                                        "(least worst-case latency: mean over batches of each batch's max latency)"))
        console.print(tables.rich_table(tables.rho_rows(run), "rho_max(N): highest uncongested rate; capacity: "
                                        "N x sum over workers of 1 / S_w(N)"))
    for sentence in data["verdict"]:
        console.print(f"[bold]verdict:[/] {escape(sentence)}", soft_wrap=True)
    for warning in data["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if not data["answered"]:
        what = "every point failed" if every_point_failed(run.points) else "no uncongested point in this grid"
        console.print(f"{output}: {what} (exit code {NO_ANSWER})", soft_wrap=True)
    return data["answered"]


def _echo(engine: str, platform: Path | None, workers: str) -> list[str]:
    """What run.json's command line records besides the target (the grid is recorded field by field)."""
    return [f"--engine {engine}", *([f"--platform {platform}"] if platform else [f"--workers {workers}"])]
