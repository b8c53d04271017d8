"""`--input-data`: what a model is fed while it is timed, as perf_analyzer's `--input-data` says it: `random` (seeded,
the default), `zeros`, or a file of the user's own samples (a model whose time depends on its data: a
NonMaxSuppression, a Loop's trip count, sparse inputs). A file is `.npz` (one array per input: samples along the
first axis) or perf_analyzer's JSON (`{"data": [{"INPUT": [values] or {"content": [...], "shape": [...]}}, ...]}`,
one entry per sample). A batch of N holds samples 1..N (from the first again when there are fewer); an input
given whole to every batch (no batch axis) takes the first sample's value."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import modelio
from .errors import UserError
from .inputfile import MAX_JSON_BYTES, checked_input
from .modelio import InputSpec, sha256_of

KINDS = ("random", "zeros")
ALIASES = {"zero": "zeros"}  # perf_analyzer's word
HOW = ("give random, zeros, or a .npz file (one array per model input, samples along the first axis) or "
       "perf_analyzer's JSON input data")
MAX_DATA_BYTES = 4 * 2**30  # samples are loaded into memory: beyond, a mistake (or a dataset to cut)


@dataclass(frozen=True)
class InputData:
    """Where a batch's inputs come from: "random", "zeros", or the path of a samples file."""

    source: str = "random"

    @property
    def is_file(self) -> bool:
        return self.source not in KINDS

    def words(self) -> str:
        """As run.json and notes record it: a file by its name and its sha256's head (a changed file is other
        samples; the same file elsewhere, as a fleet's node holds it, the same)."""
        path = Path(self.source)
        return f"{path.name} (sha256 {sha256_of(_present(path))[:12]})" if self.is_file else self.source

    def cache_key(self) -> str:
        """'' for random inputs; else what tells these inputs apart in a cache (zeros, a file's sha256 head)."""
        if not self.is_file:
            return "" if self.source == "random" else self.source
        return sha256_of(_present(Path(self.source)))[:16]

    def feeds(self, specs: list[InputSpec], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
        """A batch of `batch` queries for these inputs."""
        if self.source == "random":
            return modelio.random_inputs(specs, batch, seed)
        if self.source == "zeros":
            return {s.name: np.zeros((batch, *s.shape) if s.batched else s.shape, s.dtype) for s in specs}
        samples = _samples(self.source, _present(Path(self.source)).stat().st_mtime_ns)
        return {s.name: _batch_of(self.source, s, samples, batch) for s in specs}


RANDOM = InputData()


def of_model(data: tuple[InputData, ...], m: int) -> InputData:
    """Model m's inputs among a run's (a mix: one per model; random where none was given)."""
    return data[m] if m < len(data) else RANDOM


def _present(path: Path) -> Path:
    """The samples file, still there: moved or removed since it was given, one line (not a raw OSError)."""
    if not path.is_file():
        raise UserError(f"input data '{path}' is gone (moved or removed since it was given): put it back, or give "
                        "the file where it is now")
    return path


def parse_input_data(text: str, option: str = "--input-data") -> InputData:
    """random, zeros or a samples file that exists and reads as one (its arrays are checked against the model by
    check_input_data)."""
    text = text.strip()
    if ALIASES.get(text.lower(), text.lower()) in KINDS:
        return InputData(ALIASES.get(text.lower(), text.lower()))
    if not text:
        raise UserError(f"{option} is empty: {HOW}")
    path = checked_input(text, f"{option} file", HOW, MAX_DATA_BYTES)
    if path.suffix.lower() == ".json" and path.stat().st_size > MAX_JSON_BYTES:  # parsed whole into Python lists
        raise UserError(f"{option} '{text}' is {path.stat().st_size / 2**20:.0f} MiB of JSON, more than the "
                        f"{MAX_JSON_BYTES // 2**20} MiB parsed as such: give the samples as a .npz (numpy.savez)")
    if path.suffix.lower() not in (".npz", ".json"):
        raise UserError(f"{option} '{text}' is neither random, zeros, a .npz nor a .json file: {HOW}")
    _samples(str(path), path.stat().st_mtime_ns)  # unreadable: one line now, not at the first point
    return InputData(str(path))


def check_input_data(data: InputData, specs: list[InputSpec], what: str = "the model") -> None:
    """Every input of `specs` in the file, with samples of its shape and a type it can be cast to safely, and no
    array for an input the model lacks (a typo): one line naming the input and the fix."""
    if not data.is_file:
        return
    samples = _samples(data.source, _present(Path(data.source)).stat().st_mtime_ns)
    names = [s.name for s in specs]
    extra = sorted(set(samples) - set(names))
    if extra:
        raise UserError(f"input data '{data.source}' holds '{extra[0]}', which is not an input of {what} (its inputs: "
                        f"{', '.join(names)}): name each array after the input it feeds")
    for spec in specs:
        _batch_of(data.source, spec, samples, 1)


@lru_cache(maxsize=8)
def _samples(path: str, _mtime_ns: int) -> dict[str, np.ndarray]:
    """The file's arrays by input name, samples first (a JSON file's entries stacked); cached per file version."""
    try:
        if path.lower().endswith(".npz"):
            found = np.load(path, allow_pickle=False)
            if not isinstance(found, np.lib.npyio.NpzFile):  # a .npy under a .npz name: one array, no input names
                raise UserError(f"input data '{path}' is one array (a .npy), not a .npz of arrays named after the "
                                "model's inputs: save it with numpy.savez(path, INPUT=array)")
            with found:
                return {name: found[name] for name in found.files}
        return _json_samples(path)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise UserError(f"input data '{path}' cannot be read ({type(exc).__name__}: {str(exc)[:120]}): "
                        f"{HOW}") from None


def _json_samples(path: str) -> dict[str, np.ndarray]:
    """perf_analyzer's input data: {"data": [entry, ...]}, an entry {input: [values] | {"content": [...],
    "shape": [...]}} per sample; values flat or nested, in row-major order."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"input data '{path}' is not JSON ({exc}): {HOW}") from None
    entries = document.get("data") if isinstance(document, dict) else None
    if isinstance(entries, list) and not entries:
        raise UserError(f"input data '{path}' has an empty \"data\" list: give one object per sample (input name -> "
                        "values)")
    if isinstance(entries, list) and entries and all(isinstance(e, list) for e in entries):
        raise UserError(f"input data '{path}' holds streams (\"data\": [[...], [...]]), perf_analyzer's form for "
                        "sequence models: give one list of samples, \"data\": [{...}, {...}]")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"input data '{path}' has no \"data\": [...] list of samples (one object per sample, "
                        "input name -> values), as perf_analyzer writes it: " + HOW)
    names = list(dict.fromkeys(name for entry in entries for name in entry))
    stacked = {}
    for name in names:
        values = []
        holder = next(i for i, entry in enumerate(entries) if name in entry)
        for i, entry in enumerate(entries):
            if name not in entry:
                raise UserError(f"input data '{path}': sample {i + 1} has no '{name}' (sample {holder + 1} has it): "
                                "give every input in every sample")
            values.append(_json_value(path, name, i, entry[name]))
        stacked[name] = _stack(path, name, values)
    return stacked


def _json_value(path: str, name: str, i: int, value) -> np.ndarray:
    if isinstance(value, dict):
        if "b64" in value:
            raise UserError(f"input data '{path}': '{name}' of sample {i + 1} is base64 (\"b64\"): give its values "
                            "as a \"content\" list, or the samples as a .npz file")
        if "content" not in value:
            raise UserError(f"input data '{path}': '{name}' of sample {i + 1} is an object without \"content\": "
                            "write {\"content\": [values], \"shape\": [dims]}")
        array = _json_value(path, name, i, value["content"])
        shape = value.get("shape")
        if shape is not None:
            try:
                return array.reshape(shape)
            except (ValueError, TypeError):
                raise UserError(f"input data '{path}': '{name}' of sample {i + 1} has {array.size} values, not the "
                                f"{shape} its \"shape\" says") from None
        return array
    try:
        array = np.asarray(value)
    except ValueError:  # numpy refuses ragged lists
        array = np.empty(0, dtype=object)
    if array.dtype == object:
        raise UserError(f"input data '{path}': '{name}' of sample {i + 1} is not a list of numbers (ragged or "
                        "strings): give numbers, one list per sample")
    return array


def _stack(path: str, name: str, values: list[np.ndarray]) -> np.ndarray:
    if any(v.dtype.kind not in "biuf" for v in values):
        raise UserError(f"input data '{path}': '{name}' holds values that are not numbers or booleans: staronnx "
                        "feeds float, integer and bool inputs")
    shapes = {v.shape for v in values}
    if len(shapes) > 1:
        sizes = {v.size for v in values}
        if len(sizes) > 1:  # samples of several shapes: one batch cannot hold them
            raise UserError(f"input data '{path}': the samples of '{name}' have several shapes ({sorted(shapes)[:3]}): "
                            "staronnx measures one shape; give samples of one")
        return np.stack([v.reshape(-1) for v in values])  # flat and nested lists of one size: flat, shaped later
    return np.stack(values)


def _range(found: np.ndarray) -> str:
    return f"from {found.min()} to {found.max()}" if found.size and found.dtype.kind in "iub" else \
        f"up to {np.abs(found[np.isfinite(found)]).max():g} in size" if found.size and np.isfinite(found).any() else ""


def _castable(found: np.ndarray, dtype: np.dtype) -> bool:
    """Safe to feed as `dtype`: the same kind (float64 samples to a float32 input), integers to integers or floats,
    and 0/1 integers to a bool (perf_analyzer's JSON writes a mask so); never floats truncated to integers."""
    if found.dtype.kind in "iu" and dtype.kind in "iu" and found.size:  # narrower integers: values must fit
        limits = np.iinfo(dtype)
        return bool(limits.min <= found.min() and found.max() <= limits.max)
    if dtype.kind == "f" and found.dtype.kind in "iuf" and found.size:  # 1e6 to float16, 1e300 to float32: inf
        finite = np.abs(found[np.isfinite(found)]) if found.dtype.kind == "f" else np.abs(found)
        if finite.size and float(finite.max()) > float(np.finfo(dtype).max):
            return False
    if np.can_cast(found.dtype, dtype, "same_kind") or (found.dtype.kind in "iu" and dtype.kind == "f"):
        return True
    return dtype.kind == "b" and found.dtype.kind in "iu" and bool(np.isin(found, (0, 1)).all())


def _batch_of(path: str, spec: InputSpec, samples: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """`batch` rows of this input's samples (from the first again when there are fewer), of the input's type."""
    if spec.name not in samples:
        raise UserError(f"input data '{path}' has no '{spec.name}' (it holds {', '.join(samples) or 'nothing'}): give "
                        "an array for every input of the model")
    found = samples[spec.name]
    if found.dtype.kind not in "biuf":
        raise UserError(f"input data '{path}': '{spec.name}' is of type {found.dtype}: staronnx feeds float, integer "
                        "and bool inputs")
    if not _castable(found, spec.dtype):
        raise UserError(f"input data '{path}': '{spec.name}' holds {found.dtype} values "
                        f"{_range(found)}, the model takes {spec.dtype}: give values {spec.dtype} holds (floats are "
                        "not truncated to integers, nor integers wrapped, nor values beyond a float's range made "
                        "infinite)")
    sample = spec.shape
    if found.ndim >= 1 and found.shape[0] == 0:
        raise UserError(f"input data '{path}': '{spec.name}' holds no sample (shape {found.shape}): give at least one")
    if found.ndim == len(sample) and found.shape == sample:
        rows = found[np.newaxis]  # one sample, without the samples axis
    elif found.ndim >= 1 and found.shape[1:] == sample and found.shape[0] > 0:
        rows = found
    elif found.ndim == 2 and found.shape[0] > 0 and found.shape[1] == int(np.prod(sample)):
        rows = found.reshape((found.shape[0], *sample))  # perf_analyzer's flat values
    else:
        shape = f"[samples, {', '.join(map(str, sample))}]" if sample else "[samples]"
        raise UserError(f"input data '{path}': '{spec.name}' has shape {found.shape}; the model takes "
                        + (f"samples of {list(sample)} (an array of {shape}, or one sample)" if spec.batched else
                           f"it whole, of shape {list(sample)} (one value for every batch)")
                        + ": give arrays of that shape"
                        + (", or a --shape of your samples' sizes" if spec.batched and sample else ""))
    if not spec.batched:
        return np.array(rows[0], dtype=spec.dtype)
    taken = rows[np.arange(batch) % rows.shape[0]]
    return np.ascontiguousarray(taken.astype(spec.dtype, copy=False))
