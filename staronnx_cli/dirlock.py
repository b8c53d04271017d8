"""One writer per output directory: an advisory lock (fcntl) held for a whole sweep, advise or split.

Two sweeps into one directory would interleave their rows, and a `--force` would delete the other's finished
points. The lock file holds the writer's pid, so the second sweep can name it. The kernel releases the lock
when its process ends, however it ends: a crashed sweep never leaves the directory locked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

LOCK_FILE = ".staronnx.lock"


@contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """`directory` held for this process: a sweep's run, advise's output, a split's plan."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    try:  # never through a link: a lock file linked elsewhere would have that file truncated and given our pid
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise UserError(f"'{path}' is a symbolic link: staronnx's lock file must be a plain file; remove the "
                            "link, or sweep into another -o") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"'{path}' is not a plain file: remove it, or sweep into another -o")
    handle = os.fdopen(fd, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(f"'{directory}' is being written by another staronnx command (pid {holder}): wait for it "
                        "to finish, or write into another -o") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
