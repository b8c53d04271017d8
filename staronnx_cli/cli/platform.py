"""`staronnx platform from-run RUN_DIR -o PLATFORM.toml` and `staronnx platform check PLATFORM.toml TARGET`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors, resolve_model

app = typer.Typer(help="Platform files: machines for the simulated engine (--engine sim).", no_args_is_help=True)


@app.command("from-run")
@handle_errors
def from_run(
    run: Annotated[Path, typer.Argument(help="A run directory of a real sweep on this machine.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Platform file to write (TOML).")] = Path(
        "platform.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
):
    """Capture this machine from a real run: its workers, measured task times and dispatch overhead."""
    from ..runtime.platform import write_platform
    from ..sweep.capture import platform_from_run

    if output.suffix != ".toml":  # never one of the run's own files (run.json, points.csv), nor any other kind
        raise UserError(f"-o {output}: a platform file is TOML: give a file name ending in .toml, e.g. "
                        f"{output.with_name('platform.toml')}")
    if output.is_dir():
        raise UserError(f"-o {output} is a directory: give the platform file's path, e.g. {output / 'platform.toml'}")
    if (output.exists() or output.is_symlink()) and not force:
        raise UserError(f"'{output}' exists: add --force to overwrite it")
    platform = platform_from_run(run)
    write_platform(platform, output)
    console.print(f"wrote {output}: {platform.workers_spec}, {len(platform.times)} task times, "
                  f"task overhead {platform.task_us:.1f} us")


@app.command("check")
@handle_errors
def check(
    platform: Annotated[Path, typer.Argument(help="A platform file (TOML).")],
    target: Annotated[str, typer.Argument(help="The model, zoo name or plan directory it will simulate.")],
    trust_platform: Annotated[bool, typer.Option(
        help="Its \\[\\[times]] are of the same split made again elsewhere (as sweep --trust-platform).")] = False,
):
    """Validate a platform against a target as `sweep --engine sim` will: its \\[\\[times]] are of this target, and
    every worker kind has a time for every part."""
    from ..runtime.platform import check_times_target, falling_times, read_platform
    from ..runtime.simtimes import part_times
    from ..systems.target import load_target
    from ..zoo.names import model_name_of

    path = Path(target)
    loaded = load_target(path if path.is_dir() else resolve_model(target))
    p = read_platform(platform)
    trusted = check_times_target(p, str(platform), loaded.plan_sha256 or loaded.model_sha256, len(loaded.part_files),
                                 trust_platform, loaded.model_sha256)
    times = part_times(p, loaded.part_files, model_name_of(target, path))
    kind = "estimate" if p.estimate else "measured"
    console.print(f"{platform}: {p.name}{'' if f'({kind})' in p.name else f' ({kind})'}, workers {p.workers_spec}"
                  + (" (its [[times]] on trust: --trust-platform)" if trusted else ""))
    for kind in sorted({g.kind_key for g in p.workers}):
        cells = ", ".join(f"part {i}: {1000 * times.mean(i, kind, 1):.3f} ms" for i in range(len(loaded.part_files)))
        console.print(f"  {kind} at batch 1: {cells}")
    for where in falling_times(p):
        console.print(f"[yellow]note:[/] a larger batch takes less time: {where} (noise, or an edit?): the simulator "
                      "uses them as they are between those sizes")
