"""One way to write a whole file: to a temporary name beside it, then renamed over it. A reader never sees half a
file, a crash leaves the old one, and a symbolic link at the path is replaced, never followed (a link planted in
-o cannot make staronnx write over a file outside it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import UserError, first_line


def write_text_atomic(path: Path, text: str, then: str | None = None) -> None:
    """`path` holds `text` whole, or is left as it was. A file system that refuses: with `then`, one line ending
    with it; without, the OSError itself, naming `path`, for the command's own line (the errno's fix, or the
    cache's when the path is in it: cli/common.storage_message)."""
    write_bytes_atomic(path, text.encode(), then)


def write_bytes_atomic(path: Path, data: bytes, then: str | None = None) -> None:
    refuse_special(path)
    tmp = beside(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # a stale one, or a link planted there: never written through
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only file system refuses even that: the write's own error is the one to tell
            pass
        if then is None:
            raise OSError(exc.errno, exc.strerror or first_line(exc), str(path)) from None
        raise UserError(f"cannot write '{path}' ({exc.strerror or first_line(exc)}): {then}") from None


def beside(path: Path, suffix: str) -> Path:
    """A temporary name beside `path` (.NAME.PID.SUFFIX), within the 255 bytes a file system allows a name even
    when NAME itself is near them: a legal -o was refused as 'File name too long'."""
    name = f".{path.name}.{os.getpid()}.{suffix}"
    if len(name.encode()) > 255:
        digest = hashlib.sha256(path.name.encode()).hexdigest()[:12]
        name = f".{path.name.encode()[:200].decode(errors='ignore')}.{digest}.{os.getpid()}.{suffix}"
    return path.with_name(name)


def refuse_special(path: Path) -> None:
    """A device, a FIFO or a socket at the path is never replaced by a file: renaming over /dev/null as root made it
    an ordinary file for everything else on the machine."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there (or not reachable): the write says what is wrong
        return
    import stat

    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        what = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
        raise UserError(f"'{path}' is {what}, not a file: staronnx writes whole files; choose another -o")


def ready_to_write(path: Path) -> None:
    """Before long work whose result goes to `path`: its folder made, and a file can be made there (an OSError
    naming `path` otherwise: a file where a folder should be, a read-only or forbidden folder), now, not after
    the measuring."""
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = beside(path, "probe")
    try:  # a file made and removed: the file system's own answer (read-only, no permission, no space for a name)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        probe.unlink()
    except OSError as exc:  # said of the path asked for (the command's one line: cli/common.storage_message)
        raise OSError(exc.errno, exc.strerror or first_line(exc), str(path)) from None
