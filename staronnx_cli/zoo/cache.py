"""Built zoo models live in a user cache directory, keyed by name, seed and the builder's source."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from ..cachedir import cache_dir
from ..errors import UserError
from ..outputfile import write_bytes_atomic
from .registry import ZOO, ZooEntry


def entry(name: str) -> ZooEntry:
    if name not in ZOO:
        close = difflib.get_close_matches(name, list(ZOO), n=1, cutoff=0.6)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"no zoo model named '{name}': {guess}choose one of {', '.join(ZOO)} (see 'staronnx zoo list')")
    return ZOO[name]


def _source_digest(e: ZooEntry) -> str:
    """Changes whenever the builder code changes, so a stale cached model is never reused."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for file in (here / "builder.py", here / f"{e.module.partition(':')[0]}.py"):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def cached_path(name: str, seed: int = 0) -> Path:
    if seed < 0:
        raise UserError(f"--seed {seed}: a seed is a non-negative integer")
    e = entry(name)
    return cache_dir() / "zoo" / f"{name}-seed{seed}-{_source_digest(e)}.onnx"


def build_cached(name: str, seed: int = 0) -> tuple[Path, bool]:
    """Path of the built model, building it on first use; returns (path, was_built_now)."""
    path = cached_path(name, seed)
    if path.exists():
        return path, False
    write_bytes_atomic(path, entry(name).build(seed).SerializeToString())
    return path, True


def export(name: str, output: Path, seed: int = 0, force: bool = False) -> tuple[Path, bool]:
    """Copy the (cached) model to `output`; refuses to overwrite without force."""
    if output.exists() and not force:
        raise UserError(f"'{output}' already exists: choose another -o or add --force to overwrite it")
    if output.is_dir():
        raise UserError(f"-o '{output}' is a directory: give a file name such as {output / (name + '.onnx')}")
    path, built = build_cached(name, seed)
    write_bytes_atomic(output, path.read_bytes())  # whole or not at all; a failure names -o, not the cache
    return path, built
