"""Mix files: several models served together on the same workers, each with its own rate, batch size(s), arrival
process, latency target and priority (TOML, checked entry by entry: one line naming the entry and the fix).

```toml
[[model]]
name = "cnn"              # how results and figures name it (default: the model's name); unique
model = "tiny_cnn"        # a zoo name, an .onnx file or a plan directory (relative to this file)
rate = 300                # queries/s at scale 1
batch = 2                 # its batch size, or a list: every combination of the models' lists is swept
target_ms = 20            # optional: the latency target its worst-case latency is held against
priority = 0              # optional: higher is served first by --policy deadline (then the earlier deadline)
arrival = "fixed"         # optional: fixed, poisson or trace:FILE
```
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..inputdata import ALIASES, KINDS, RANDOM, InputData, parse_input_data
from ..load.schedule import ARRIVALS, arrivals
from ..tomlfile import read_toml

KEYS = ("name", "model", "rate", "batch", "target_ms", "priority", "arrival", "shape", "input_data")
MAX_COMBINATIONS = 64  # batch-size combinations of one mix: beyond, the grid is a typo, not a plan


@dataclass(frozen=True)
class MixModel:
    name: str
    source: str  # as written: a zoo name, or a path made absolute against the mix file's directory
    rate_qps: float  # at scale 1
    batch_sizes: tuple[int, ...]
    target_ms: float | None = None
    priority: int = 0
    arrival: str = "fixed"
    shape: tuple[str, ...] = ()  # --shape's INPUT:SIZES (a sequence length), for a model file
    input_data: InputData = RANDOM  # --input-data's random, zeros or samples file, for this model


@dataclass(frozen=True)
class Mix:
    path: Path
    models: tuple[MixModel, ...]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def combinations(self) -> list[tuple[int, ...]]:
        """Every choice of one batch size per model, in the order the file lists them."""
        return list(itertools.product(*(m.batch_sizes for m in self.models)))

    def index(self, name: str) -> int:
        if name not in self.names:
            raise UserError(f"--vary {name}: the mix has no model of that name; it has {', '.join(self.names)}")
        return self.names.index(name)


def combination_label(mix: Mix, batch_sizes: tuple[int, ...]) -> str:
    """'cnn=2 transformer=1': which batch size each model ran (results' `mix` column)."""
    return " ".join(f"{m.name}={n}" for m, n in zip(mix.models, batch_sizes))


def read_mix(path: Path) -> Mix:
    return parse_mix(read_toml(path, "mix file", "write one (docs/mix.md), e.g. "
                               "experiments/mixes/tiny.toml"), path)


def parse_mix(data: dict, path: Path) -> Mix:
    entries = data.get("model")
    extra = sorted(set(data) - {"model"})
    if extra:
        raise UserError(f"mix '{path}': '{extra[0]}' is not a mix setting: a mix is a list of [[model]] tables")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"mix '{path}' lists no model: add [[model]] tables with model = \"NAME\" and rate = R")
    models = [_model(entry, i, path) for i, entry in enumerate(entries)]
    names = [m.name for m in models]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise UserError(f"mix '{path}': two models are named '{twice}': give each [[model]] its own name = \"...\"")
    mix = Mix(path, tuple(models))
    count = math.prod(len(m.batch_sizes) for m in models)  # counted before any is built (10 x 10 lists: 10^10)
    if count > MAX_COMBINATIONS:
        raise UserError(f"mix '{path}': its batch lists make {count} combinations (more than {MAX_COMBINATIONS}): "
                        "give fewer batch sizes per model")
    return mix


def _model(entry, i: int, path: Path) -> MixModel:
    where = f"mix '{path}' [[model]] #{i + 1}"
    if not isinstance(entry, dict):
        raise UserError(f"{where} is not a table: write [[model]] with model = \"NAME\" and rate = R")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise UserError(f"{where}: '{unknown[0]}' is not a model setting: use {', '.join(KEYS)}")
    source = entry.get("model")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{where} needs model = \"NAME\": a zoo name, an .onnx file or a plan directory")
    where = f"mix '{path}' model '{entry.get('name', source)}'"
    name = entry.get("name", _default_name(source))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"{where}: name {name!r} must be letters, digits, '_', '.' or '-' (it names result rows)")
    rate = _positive(entry, "rate", where, "queries per second at scale 1, e.g. rate = 100")
    batches = entry.get("batch", 1)
    batches = batches if isinstance(batches, list) else [batches]
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise UserError(f"{where}: batch = {entry.get('batch')!r} must be a batch size of at least 1 or a list "
                        "of them, e.g. batch = [1, 2]")
    target = entry.get("target_ms")
    if target is not None:
        target = _positive(entry, "target_ms", where, "the latency target in ms, e.g. target_ms = 50")
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise UserError(f"{where}: priority = {priority!r} must be an integer (higher is served first)")
    arrival = str(entry.get("arrival", "fixed"))
    if arrival.startswith("trace:") and not Path(arrival[6:]).is_absolute():
        arrival = "trace:" + str(path.parent / arrival[6:])
    try:
        arrivals(arrival, 1.0, 2)
    except UserError as exc:
        if arrival.startswith("trace:"):  # the trace's own problem (missing, not a regular file, garbage) says more
            raise UserError(f"{where}: {exc}") from None
        raise UserError(f"{where}: arrival = {arrival!r} is not an arrival process: write {ARRIVALS}") from None
    if not Path(source).is_absolute() and (path.parent / source).exists():
        source = str((path.parent / source).resolve())
    shape = entry.get("shape", [])
    shape = [shape] if isinstance(shape, str) else shape
    if not isinstance(shape, list) or not all(isinstance(s, str) for s in shape):
        raise UserError(f"{where}: shape = {entry.get('shape')!r} must be INPUT:SIZES or a list of them, e.g. "
                        "shape = [\"input_ids:128\"] (as sweep's --shape)")
    return MixModel(name, source, float(rate), tuple(dict.fromkeys(batches)), None if target is None else
                    float(target), priority, arrival, tuple(shape), _input_data(entry, path, where))


def _input_data(entry: dict, path: Path, where: str) -> InputData:
    """input_data = "random" | "zeros" | "FILE" (a path against the mix file's directory), as sweep's --input-data."""
    given = entry.get("input_data", "random")
    if not isinstance(given, str):
        raise UserError(f"{where}: input_data = {given!r} must be \"random\", \"zeros\" or a samples file's path, "
                        "e.g. input_data = \"samples.npz\" (as sweep's --input-data)")
    if ALIASES.get(given.strip().lower(), given.strip().lower()) not in KINDS and not Path(given).is_absolute():
        given = str(path.parent / given)
    return parse_input_data(given, f"{where}: input_data")


def _positive(entry: dict, key: str, where: str, hint: str) -> float:
    value = entry.get(key)
    if value is None:
        raise UserError(f"{where} needs {key}: {hint}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{where}: {key} = {value!r} must be a positive number: {hint}")
    return float(value)


def _default_name(source: str) -> str:
    from ..zoo.names import display_name

    return display_name(Path(source)) if source.endswith(".onnx") else (Path(source).name or
                                                                         Path(source).resolve().name)


def parse_scales(text: str) -> tuple[float, ...]:
    """--scale: START:STOP:STEP (both ends included) or a list; every scale positive."""
    from ..sweep.grid import parse_rates

    try:
        scales = parse_rates(text)
    except UserError:
        raise UserError(f"--scale '{text}' is not a list of scales (positive numbers, at most 1e12): write e.g. "
                        "--scale 0.5:2:0.25 or --scale 1,1.5,2") from None
    return tuple(scales)
