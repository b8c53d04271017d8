"""Worker kinds as objects: what a kind is called, where its tensors live, the key performance models and platform
files use for it (`cpu:K` by its cores, `cuda`), ONNX Runtime's providers for it, whether its sessions pin ORT's
threads, and how its workers are named. A kind is also its name (a `str`), so it is written to files and compared
with what they hold as before. A new kind (another accelerator) is one more object here and its sessions in
runtime/."""

from __future__ import annotations

import re
from typing import Any

HOST = "host"  # the memory node of every CPU worker
CPU_PROVIDER = "CPUExecutionProvider"


class WorkerKind(str):
    on_gpu: bool  # its tensors live on a device; its inputs are copied there
    provider: str  # ONNX Runtime's execution provider

    def __new__(cls, name: str, on_gpu: bool, provider: str) -> WorkerKind:
        kind = super().__new__(cls, name)
        kind.on_gpu, kind.provider = on_gpu, provider
        return kind

    def __reduce__(self):  # pickled (Ray, copies) as its name, read back as the one object of that name
        return kind_named, (str(self),)

    def key(self, cores: int) -> str:
        """What a performance model is keyed by: a CPU kind by its cores (cpu:4), a GPU kind by its name (cuda)."""
        return str(self) if self.on_gpu else f"{self}:{cores}"

    def memory_node(self, device_id: int) -> str:
        return f"{self}:{device_id}" if self.on_gpu else HOST

    def providers(self, device_id: int = 0, **options: str) -> list[Any]:
        """ONNX Runtime's providers for a session of this kind (a device's options, e.g. gpu_mem_limit)."""
        if not self.on_gpu:
            return [CPU_PROVIDER]
        return [(self.provider, {"device_id": device_id, **options}), CPU_PROVIDER]

    @property
    def pins_threads(self) -> bool:
        """Its sessions' intra-op threads are pinned to the worker's cores (a GPU worker's only drive the device)."""
        return not self.on_gpu

    def worker_name(self, number: int, index: int | None = None) -> str:
        """cpu3; cuda0, or cuda0.1 for the second of several workers on GPU 0."""
        return f"{self}{number}" + (f".{index}" if index is not None else "")


CPU = WorkerKind("cpu", on_gpu=False, provider=CPU_PROVIDER)
CUDA = WorkerKind("cuda", on_gpu=True, provider="CUDAExecutionProvider")
KINDS = (CPU, CUDA)


def kind_named(name: str) -> WorkerKind:
    """The kind a file or a flag names (cpu, cuda); KeyError for another."""
    return {str(k): k for k in KINDS}[name]


def key_on_gpu(key: str) -> bool:
    """Whether a device key (cpu:4, cuda) names a GPU; False for a kind this staronnx does not know."""
    kind = key.split(":", 1)[0]
    return any(k.on_gpu and k == kind for k in KINDS)


def is_kind_key(key: str) -> bool:
    """cuda, or cpu:K with K a whole number."""
    name, _, cores = key.partition(":")
    kind = next((k for k in KINDS if k == name), None)
    return kind is not None and (not cores if kind.on_gpu else cores.isdigit())


def device_of_worker(name: str) -> int:
    """cuda1.0 -> 1 (the GPU a worker drives); 0 for a CPU worker."""
    kind = kind_of_worker(name)
    number = name[len(kind):].split(".", 1)[0]
    return int(number) if kind.on_gpu and number.isdigit() else 0


def kind_of_worker(name: str) -> WorkerKind:
    """A worker's name says its kind (cuda0, cuda0.1, cpu3); a name no kind begins with is a CPU worker's."""
    return next((k for k in KINDS if k.on_gpu and name.startswith(k)), CPU)


CPU_SPEC = re.compile(r"cpu:(?:(\d+)x)?(\d+)")  # --workers cpu:GxK (G workers of K cores), cpu:K
GPU_SPEC = re.compile(r"cuda(?::(\d+))?(?:x(\d+))?")  # --workers cuda, cuda:ID, cuda:IDxW (W workers on one GPU)


def layout_key(spec: str) -> str:
    """A worker spec in one spelling (cpu:2 is cpu:1x2, cuda is cuda:0x1, spaces dropped): two specs of one layout
    compare equal (a resume of a run made with cpu:1x1 was refused when given cpu:1)."""
    items = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        cpu, gpu = CPU_SPEC.fullmatch(item), GPU_SPEC.fullmatch(item)
        items.append(f"cpu:{int(cpu.group(1) or 1)}x{int(cpu.group(2))}" if cpu else
                     f"cuda:{int(gpu.group(1) or 0)}x{int(gpu.group(2) or 1)}" if gpu else item)
    return ",".join(items)
