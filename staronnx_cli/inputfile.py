"""One check for every input file a reader opens (traces, costs, platforms, mixes): a regular file of bounded size,
or one line naming the problem and the fix. A FIFO, a device (/dev/zero) or a huge file would otherwise be read for
ever or into all the memory there is."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

MAX_TEXT_BYTES = 256 * 2**20  # a trace of ~20 million arrivals, a costs file of a million nodes: beyond, a mistake
MAX_RESULT_BYTES = 4 * 2**30  # a run's batches.csv: tens of millions of batch rows
MAX_JSON_BYTES = 64 * 2**20  # run.json, plan.json, a costs file's sidecar: a few KiB each when written by staronnx


def checked_input(path: str | Path, kind: str, how_to_make: str, max_bytes: int = MAX_TEXT_BYTES) -> Path:
    """`path` if it is a regular file of at most `max_bytes`; else one line: `kind` names the file ("arrival trace"),
    `how_to_make` says how to get a good one."""
    path = Path(path)
    if dangling(path):
        raise UserError(f"{kind} '{path}' is a symbolic link that {DANGLING}: {how_to_make}")
    if not path.exists():
        raise UserError(f"{kind} '{path}' not found: {how_to_make}")
    if path.is_dir():
        raise UserError(f"{kind} '{path}' is a directory, not a file: {how_to_make}")
    if not path.is_file():  # a FIFO, a socket or a device would be read for ever
        raise UserError(f"{kind} '{path}' is not a regular file (a pipe or a device is read for ever): give a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{kind} '{path}' is {size / 2**20:.0f} MiB, more than the {max_bytes / 2**20:.0f} MiB such a "
                        "file needs: check the path")
    return path


DANGLING = "leads nowhere (round in a loop, or to something removed)"


def dangling(path: Path) -> bool:
    """A symbolic link whose end is not there: a loop, or a target removed (exists() says only 'not found')."""
    return path.is_symlink() and not path.exists()
