"""Worker kinds in one place: what a kind is called, the key performance models and platform files use for it
(`cpu:K` by its cores, `cuda`), its memory node, and the label of a worker of it. Every other module asks these
instead of comparing strings, so a new kind (another accelerator) is added here and where it runs."""

from __future__ import annotations

CPU = "cpu"
CUDA = "cuda"
KINDS = (CPU, CUDA)
HOST = "host"  # the memory node of every CPU worker


def on_gpu(kind: str) -> bool:
    """A kind that runs on a GPU (its tensors live on the device, its inputs are copied there)."""
    return kind == CUDA


def kind_key(kind: str, cores: int) -> str:
    """What a performance model is keyed by: a CPU kind by its cores (cpu:4), a GPU kind by its name (cuda)."""
    return kind if on_gpu(kind) else f"{CPU}:{cores}"


def kind_of_key(key: str) -> str:
    """cpu:4 -> cpu, cuda -> cuda."""
    return key.split(":", 1)[0]


def key_on_gpu(key: str) -> bool:
    return on_gpu(kind_of_key(key))


def is_kind_key(key: str) -> bool:
    """cuda, or cpu:K with K a whole number."""
    kind, _, cores = key.partition(":")
    return (on_gpu(kind) and not cores) or (kind == CPU and cores.isdigit())


def memory_node(kind: str, device_id: int) -> str:
    return f"{CUDA}:{device_id}" if on_gpu(kind) else HOST


def worker_name_on_gpu(name: str) -> bool:
    """A worker's name says its kind (cuda0, cuda0.1, cpu3)."""
    return name.startswith(CUDA)
