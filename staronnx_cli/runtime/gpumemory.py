"""A GPU worker's `--memory-limit` budget, shared by everything it holds on the device and in pinned host memory:
the graph buffers and the pinned inputs first (they are allocated outside ONNX Runtime's arenas), then what is
left split evenly between its sessions' arenas (`gpu_mem_limit`), the plain and the CUDA-graph session of every
part alike."""

from __future__ import annotations

import numpy as np

from .. import modelio
from ..errors import UserError

_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}  # ONNX elem types


def tensor_bytes(value_info, batch: int, batch_names: frozenset[str] = frozenset()) -> int:
    """Bytes of a graph input or output at this batch size. A dimension named in `batch_names` is the batch (a
    part's tensor may have it on its second axis); without one, the first dimension is, whatever was exported, and a
    symbolic dimension other than the first counts as 1."""
    ttype = value_info.type.tensor_type
    dims = list(ttype.shape.dim)
    named = [d.dim_param in batch_names for d in dims]
    count = 1
    for i, d in enumerate(dims):
        if named[i] or (i == 0 and not any(named)):
            count *= batch * max(1, modelio.batch_multiple(d.dim_param))
        else:
            count *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
    return count * _DTYPE_BYTES.get(ttype.elem_type, 4)


def graph_buffer_bytes(model, batch: int) -> int:
    """A CUDA-graph part's bound buffers: one per graph input (not initializers) and per output."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    names = frozenset(modelio.batch_dims(model))
    return sum(tensor_bytes(v, batch, names) for v in [*inputs, *model.graph.output])


def arena_share(budget: int, sessions: int, held_bytes: int, worker: str) -> int:
    """Each session's arena cap once `held_bytes` (pinned inputs, graph buffers) are taken out of the budget."""
    left = budget - held_bytes
    if left < sessions or sessions <= 0:  # a share of 0 bytes would mean no cap at all to ONNX Runtime
        raise UserError(f"--memory-limit: worker {worker}'s budget of {budget / 2**20:.1f} MiB is taken whole by its "
                        f"pinned inputs and CUDA-graph buffers ({held_bytes / 2**20:.1f} MiB): raise the budget, "
                        "lower the batch size or add --no-cuda-graphs")
    return left // sessions


def pinned_bytes(inputs: dict[str, np.ndarray]) -> int:
    return int(sum(v.nbytes for v in inputs.values()))
