"""`staronnx zoo list | build NAME -o FILE`: the built-in models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from .common import console, handle_errors, refuse_measured_file

app = typer.Typer(help="Built-in models: the paper's four and small ones for demos and tests.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_models():
    """List the zoo's models with their published parameter counts."""
    from rich.table import Table

    from ..zoo import cache
    from ..zoo.registry import ZOO

    table = Table(title="staronnx zoo: seeded random weights (timing does not depend on them)")
    table.add_column("name", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("input -> out", no_wrap=True)
    table.add_column("what")
    built = {e.name for e in ZOO.values() if cache.cached_path(e.name).exists()}
    for e in ZOO.values():
        params = f"{e.published_params / 1e6:.1f} M" if e.published_params else "tiny"
        shapes = f"{'x'.join(map(str, e.input_shape))} -> {'x'.join(map(str, e.output_shape))}"
        table.add_row(e.name + (" *" if e.name in built else ""), params, shapes, e.summary)
    console.print(table)
    where = f"* = already built in {cache.cache_dir() / 'zoo'}; " if built else \
        "none built yet: a command that names one builds it on first use; "
    console.print(f"{where}build one with 'staronnx zoo build NAME -o FILE'")


@app.command("build")
@handle_errors
def build(
    name: Annotated[str, typer.Argument(help="Model name, see 'staronnx zoo list'.")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Where to write the .onnx file.")] = None,
    seed: Annotated[int, typer.Option(help="Weight seed; the same seed gives the same bytes.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite OUTPUT if it exists.")] = False,
):
    """Build a zoo model (cached after the first build) and write it to OUTPUT."""
    from ..zoo import cache

    if output is None:
        path, built = cache.build_cached(name, seed)
        console.print(f"{'built' if built else 'cached'} {name}: {path}")
        return
    if output.endswith(("/", "\\")):  # a folder meant (Path would drop the slash and write a file of its name)
        raise UserError(f"-o {output} names a folder: give a file name, e.g. -o {output}{name}.onnx")
    refuse_measured_file(Path(output))
    cached, built = cache.export(name, Path(output), seed, force)
    console.print(f"{'built' if built else 'copied'} {name} -> {output} (cache: {cached})")
