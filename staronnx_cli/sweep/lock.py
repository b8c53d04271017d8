"""One writer per run directory: an advisory lock (fcntl) held for a whole sweep.

Two sweeps into one directory would interleave their rows, and a `--force` would delete the other's finished
points. The lock file holds the writer's pid, so the second sweep can name it. The kernel releases the lock
when its process ends, however it ends: a crashed sweep never leaves the directory locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

LOCK_FILE = ".staronnx.lock"


@contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(f"run directory '{directory}' is being written by another sweep (pid {holder}): wait for it "
                        "to finish, or sweep into another -o") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
