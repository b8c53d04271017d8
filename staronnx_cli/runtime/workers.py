"""Worker specs: `cpu:GxK` (G workers of K pinned cores), `cpu:K`, `cuda:ID`, `cuda:IDxW` (W workers sharing one
GPU, each with its own host thread, sessions and streams), joined by commas, or `auto`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import UserError
from ..kinds import CPU, CPU_SPEC, CUDA, GPU_SPEC, WorkerKind
from ..kinds import HOST as HOST  # the memory node of CPU workers, where the runtime imports it from


@dataclass(frozen=True)
class WorkerSpec:
    name: str  # "cpu0", "cuda0"
    kind: WorkerKind  # CPU or CUDA (written as "cpu", "cuda")
    cores: tuple[int, ...]  # pinned cores (cpu); the driving core (cuda), if any
    device_id: int = 0

    @functools.cached_property
    def on_gpu(self) -> bool:
        return self.kind.on_gpu

    @functools.cached_property
    def memory_node(self) -> str:
        return self.kind.memory_node(self.device_id)

    @functools.cached_property
    def kind_key(self) -> str:
        """What a performance model is keyed by: the kind and its size (cpu:4, cuda)."""
        return self.kind.key(len(self.cores))


def canonical_workers(spec: str) -> str:
    """--workers as run.json records it and --resume compares it: items stripped, kinds lower-case, numbers plain
    (' cpu:01x1' ran and was written as given; a full-width digit too)."""
    return ",".join(re.sub(r"\d+", lambda m: str(int(m.group())), item.strip().lower()) for item in spec.split(","))


def parse_workers(spec: str, cores: list[int], cuda_usable: bool, cuda_reason: str = "") -> list[WorkerSpec]:
    """Workers for a spec string, cores given out in order; one clear error for anything impossible."""
    if spec.strip() == "auto":
        from ..machine import auto_worker_layout, numa_nodes
        from ..ortenv import gpu_count

        spec = auto_worker_layout(numa_nodes(), gpu_count(cuda_usable))  # as doctor shows it: every GPU
    workers: list[WorkerSpec] = []
    free = list(cores)
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        cpu, gpu = CPU_SPEC.fullmatch(item), GPU_SPEC.fullmatch(item)
        if cpu:
            groups, size = int(cpu.group(1) or 1), int(cpu.group(2))
            if groups < 1 or size < 1:
                raise UserError(f"--workers {item}: groups and cores must be at least 1, e.g. cpu:2x1")
            if groups * size > len(free):
                raise UserError(f"--workers {spec}: asks for {groups * size} more cores but only {len(free)} are "
                                f"free of {len(cores)} usable here; try cpu:1x{len(cores)} or cpu:{len(cores)}x1")
            for _ in range(groups):
                mine, free = tuple(free[:size]), free[size:]
                workers.append(WorkerSpec(CPU.worker_name(sum(not w.on_gpu for w in workers)), CPU, mine))
        elif gpu:
            if not cuda_usable:
                why = cuda_reason or "see staronnx doctor"
                raise UserError(f"--workers {item}: no usable CUDA device here ({why}); "
                                "use CPU workers, e.g. --workers cpu:1x2")
            device, count = int(gpu.group(1) or 0), int(gpu.group(2) or 1)
            if count < 1:
                raise UserError(f"--workers {item}: at least one worker per GPU, e.g. cuda:{device}x2")
            if any(w.on_gpu and w.device_id == device for w in workers):
                raise UserError(f"--workers {spec}: cuda:{device} is given twice; for several workers on one GPU "
                                f"write cuda:{device}x2")
            for j in range(count):  # one memory node: tensors pass between them without a copy
                workers.append(WorkerSpec(CUDA.worker_name(device, j if count > 1 else None), CUDA, (),
                                          device))
        elif item.strip().lower() == "auto":
            raise UserError(f"--workers {spec}: auto picks the whole layout, it joins no list: give auto alone, or "
                            "list the workers, e.g. cpu:1x1,cpu:1x1")
        else:
            raise UserError(f"--workers '{item}' is not a worker: write cpu:GxK (G workers of K cores), cpu:K, "
                            "cuda:ID, cuda:IDxW (W workers on one GPU), or auto")
    if not workers:
        raise UserError("--workers is empty: write e.g. --workers cpu:1x2")
    return workers
