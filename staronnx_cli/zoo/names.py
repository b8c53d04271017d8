"""What the user typed as a model: a path, or a zoo name to build on first use; and the name titles show."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError


def resolve_model(model: str, say: Callable[[str], None] = lambda text: None) -> Path:
    """A path, or a zoo model name when no such file exists (built and cached on first use, said through `say`)."""
    path = Path(model)
    if path.exists():
        return path
    from .registry import ZOO  # builds import onnx: only when a zoo name is given

    if model not in ZOO:
        raise UserError(_not_found(model, sorted(ZOO)))
    from .cache import build_cached

    built_path, built = build_cached(model)
    say(f"zoo model {model}: {'built' if built else 'cached'} at {built_path}")
    return built_path


def _not_found(model: str, names: list[str]) -> str:
    """What a target that is no file, no plan directory and no zoo model may have meant."""
    close = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
    if close:
        return f"'{model}' is no file and no zoo model: did you mean '{close[0]}'? (the zoo: {', '.join(names)})"
    if model.endswith(".onnx"):
        return (f"model file '{model}' not found: check the path, or build one with 'staronnx zoo build NAME -o "
                f"{model}' (NAME one of {', '.join(names)})")
    return (f"'{model}' is no file, no plan directory and no zoo model: make a plan with 'staronnx split MODEL -o "
            f"{model}', or name a zoo model ({', '.join(names)})")


def display_name(path: Path) -> str:
    """A model's name for titles: the zoo name for a cached zoo file (name-seedS-digest.onnx), else the stem."""
    return re.sub(r"-seed\d+-[0-9a-f]{12}$", "", Path(path).stem)


def source_file(copy: Path) -> Path:
    """Beside a --shape copy (shapes.py): the model and the --shape it was made from, for `typed_name`."""
    return copy.with_name(copy.stem + ".source.json")


def typed_name(path: Path) -> str:
    """What a user types to name this model again: the zoo name of a cached zoo file of seed 0 (its file name is a
    digest's; a zoo name builds seed 0), a --shape copy's model and --shape (not the cache's path), else its path."""
    from ..cachedir import cache_dir

    path = Path(path)
    if path.resolve().parent.parent == (cache_dir() / "shaped").resolve() and source_file(path).is_file():
        try:
            made = json.loads(source_file(path).read_text())
            return " ".join([str(made["model"]), *(f"--shape {s}" for s in made["shape"])])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # its path, then
    cached = path.resolve().parent == (cache_dir() / "zoo").resolve()
    match = re.fullmatch(r"(.+)-seed0-[0-9a-f]{12}", path.stem)
    return match.group(1) if cached and match else str(path)


def model_name_of(target: str, path: Path) -> str:
    """googlenet (a zoo name), model (model.onnx), or the source model of a plan directory."""
    if path.is_dir():
        if not (path / "plan.json").is_file():  # none, or a FIFO: read_plan names the problem
            return path.name
        try:
            return display_name(Path(json.loads((path / "plan.json").read_text())["source_model"]))
        except (OSError, ValueError, KeyError, TypeError):  # read_plan names what is wrong with it
            return path.name
    return display_name(path) if path.suffix == ".onnx" else target
