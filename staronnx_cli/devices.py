"""Device specs as users write them: `cpu`, `cpu:THREADS`, `cuda`, `cuda:ID`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import UserError
from .kinds import CPU, CUDA, WorkerKind, kind_named

_SPEC = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def usable_cores() -> int:
    """Cores this process may run on (affinity-aware, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Device:
    kind: WorkerKind  # CPU or CUDA
    number: int  # threads for cpu, device id for cuda

    def __str__(self) -> str:
        return f"{self.kind}:{self.number}"

    @property
    def on_gpu(self) -> bool:
        return self.kind.on_gpu


def parse_device(spec: str) -> Device:
    match = _SPEC.match(spec.strip().lower())
    if not match:
        raise UserError(f"--device '{spec}' is not a device: write cpu, cpu:THREADS, cuda or cuda:ID")
    kind, number = kind_named(match.group(1)), match.group(2)
    if not kind.on_gpu:
        threads = int(number) if number else usable_cores()
        if threads < 1:
            raise UserError(f"--device '{spec}': a CPU device needs at least 1 thread, e.g. cpu:2")
        if threads > usable_cores():
            raise UserError(f"--device '{spec}': {threads} threads but {usable_cores()} usable cores here (threads "
                            f"would share cores and the times would mean little); use cpu:{usable_cores()} or fewer")
        return Device(CPU, threads)
    return Device(CUDA, int(number) if number else 0)
