"""A ceiling on this process's memory just under what the machine can give it: past it, an allocation fails (ONNX
Runtime raises std::bad_alloc, which a command turns into one line) instead of the kernel's out-of-memory killer
ending the process without a word (exit 137) and maybe another process with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HEADROOM = 0.9  # of the memory available when the work starts (the rest: the page cache, other processes' growth)
OUT_OF_MEMORY = re.compile(r"bad_alloc|failed to allocate|out of memory|MemoryError", re.IGNORECASE)


def _meminfo_bytes(*keys: str) -> int | None:
    """The sum of /proc/meminfo's `keys` in bytes (None where it cannot be read: not Linux)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in keys)
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _data_bytes() -> int:
    """What this process's data segment holds now (VmData: the mappings RLIMIT_DATA counts)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def available_bytes() -> int | None:
    """Memory this machine can still give (MemAvailable and free swap), or None where not known."""
    return _meminfo_bytes("MemAvailable", "SwapFree")


@contextmanager
def memory_ceiling() -> Iterator[int | None]:
    """Within: allocations beyond HEADROOM of the memory available now fail in this process; yields that ceiling in
    bytes (None where it cannot be set). A lower limit already set (ulimit -d) is kept."""
    try:
        import resource
    except ImportError:  # not a Unix
        yield None
        return
    available = available_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if available is None:
        yield None
        return
    ceiling = _data_bytes() + int(HEADROOM * available)
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    if soft != resource.RLIM_INFINITY and soft <= ceiling:
        yield soft
        return
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    try:
        yield ceiling
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def out_of_memory(exc: BaseException) -> bool:
    """An allocation refused (ONNX Runtime's bad_alloc, numpy's MemoryError): the ceiling, or the machine, was hit."""
    return isinstance(exc, MemoryError) or bool(OUT_OF_MEMORY.search(str(exc)))
