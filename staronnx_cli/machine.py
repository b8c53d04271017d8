"""What this machine offers: CPU model, cores, NUMA nodes, GPUs, and the worker layout `auto` picks."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

from .devices import usable_cores


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    cores: int
    numa_nodes: list[list[int]]  # usable core ids per NUMA node


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_cpulist(text: str) -> list[int]:
    """Linux cpulist syntax, e.g. '0-3,8,10-11'."""
    cores: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cores.extend(range(int(lo), int(hi or lo) + 1))
    return cores


def numa_nodes(root: Path = Path("/sys/devices/system/node")) -> list[list[int]]:
    """Usable cores per NUMA node; one node holding every usable core when sysfs says nothing."""
    try:
        import os

        allowed = set(os.sched_getaffinity(0))
    except AttributeError:
        allowed = set(range(usable_cores()))
    nodes = []
    for path in sorted(root.glob("node[0-9]*"), key=lambda p: int(re.sub(r"\D", "", p.name))):
        try:
            cores = [c for c in parse_cpulist((path / "cpulist").read_text()) if c in allowed]
        except OSError:
            continue
        if cores:
            nodes.append(cores)
    return nodes or [sorted(allowed)]


def machine_info() -> MachineInfo:
    return MachineInfo(cpu_model(), usable_cores(), numa_nodes())


WORKERS_PER_GPU = 2  # measured on an H100 (GoogLeNet): 2 sessions served 1.4x the images/s of one at batch 1 and 8


def auto_worker_layout(numa: list[list[int]], gpus: int, per_gpu: int = WORKERS_PER_GPU) -> str:
    """The paper's grouping: one CPU worker per NUMA node, one core kept back to drive each GPU, and
    `per_gpu` workers on each GPU (their host threads mostly wait for the GPU: they share that core).

    Cores for GPU drivers are taken from the last NUMA nodes first. Returns a --workers spec string.
    """
    sizes = [len(cores) for cores in numa]
    for g in range(gpus):
        node = len(sizes) - 1 - (g % len(sizes))
        sizes[node] = max(sizes[node] - 1, 0)
    parts = [f"cuda:{g}" + (f"x{per_gpu}" if per_gpu > 1 else "") for g in range(gpus)]
    parts += [f"cpu:1x{size}" for size in sizes if size > 0]
    return ",".join(parts) if parts else "cpu:1x1"
