"""What a node asks of the machine, from shapes alone: floating-point operations and bytes moved (its activations in
and out, its weights), and so whether it is memory- or compute-bound (the roofline's ridge). Opara launches the two
classes alternately so that they overlap instead of competing; a branch plan's launch order does the same with
parts (launch_order)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from .tensors import TensorInfo

RIDGE_FLOP_PER_BYTE = 10.0  # below: memory-bound; about where a GPU's or a CPU core's roofline turns
MATMULS = {"MatMul", "Gemm", "MatMulInteger", "FusedMatMul"}
CONVS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"}
POOLS = {"MaxPool", "AveragePool", "LpPool"}


def node_work(model: onnx.ModelProto, tensors: dict[str, TensorInfo], names: list[str],
              batch: int) -> dict[str, tuple[float, float]]:
    """node name -> (FLOPs, bytes moved) at `batch`, for the nodes named."""
    graph = model.graph
    weights = {w.name: w for w in graph.initializer}
    wanted = set(names)
    out = {}
    for node in graph.node:
        if node.name not in wanted:
            continue
        moved = sum(_bytes(t, tensors, weights, batch) for t in [*node.input, *node.output] if t)
        out[node.name] = (_flops(node, tensors, weights, batch), float(moved))
    return out


def _elements(name: str, tensors: dict[str, TensorInfo], batch: int) -> float:
    info = tensors.get(name)
    return info.bytes_at(batch) / np.dtype(info.dtype).itemsize if info else 0.0


def _bytes(name: str, tensors: dict[str, TensorInfo], weights: dict, batch: int) -> int:
    if name in tensors:
        return tensors[name].bytes_at(batch)
    if name in weights:
        w = weights[name]
        return int(math.prod(w.dims)) * np.dtype(helper.tensor_dtype_to_np_dtype(w.data_type)).itemsize
    return 0


def _flops(node: onnx.NodeProto, tensors: dict[str, TensorInfo], weights: dict, batch: int) -> float:
    """Multiply-adds count two: a convolution's per output element are its kernel's weights per output channel; a
    matrix product's, its inner dimension; a pooling's, its window; anything else one per output element."""
    produced = sum(_elements(t, tensors, batch) for t in node.output if t)
    if node.op_type in CONVS and len(node.input) > 1 and node.input[1] in weights:
        return 2.0 * produced * math.prod(weights[node.input[1]].dims[1:])
    if node.op_type in MATMULS:
        return 2.0 * produced * _inner(node, tensors, weights)
    if node.op_type in POOLS:
        kernel = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), [1])
        return produced * math.prod(kernel)
    if node.op_type.startswith("Global") or node.op_type.startswith("Reduce"):
        return sum(_elements(t, tensors, batch) for t in node.input[:1] if t)
    return produced


def _inner(node: onnx.NodeProto, tensors: dict[str, TensorInfo], weights: dict) -> int:
    """The inner dimension of a matrix product (Gemm's transA / transB honoured); 1 when no shape says it."""
    trans_a = any(a.name == "transA" and a.i for a in node.attribute)
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    first = node.input[0]
    if first in tensors and len(tensors[first].shape) >= 2:
        k = tensors[first].shape[-2 if trans_a else -1]
        if isinstance(k, int):
            return k
    second = node.input[1] if len(node.input) > 1 else ""
    if second in weights and len(weights[second].dims) >= 2:
        dims = weights[second].dims
        return int(dims[-1] if trans_b else dims[-2])
    return 1


def bound(flops: float, moved: float) -> str:
    """'compute' at or above the ridge's FLOPs per byte, else 'memory'."""
    return "compute" if moved == 0 or flops / moved >= RIDGE_FLOP_PER_BYTE else "memory"


def launch_order(deps: list[list[int]], bounds: list[str], demand: list[float]) -> list[int]:
    """Opara's launch order, over parts: a topological order that, among the ready ones, takes a part of the other
    class than the last one taken where it can (memory- and compute-bound work then overlap), the smallest demand
    first within a class."""
    waiting = [len(d) for d in deps]
    dependents: list[list[int]] = [[] for _ in deps]
    for p, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(p)
    ready = [p for p, w in enumerate(waiting) if w == 0]
    order: list[int] = []
    last = ""
    while ready:
        pick = min(ready, key=lambda p: (bounds[p] == last, demand[p], p))
        ready.remove(pick)
        order.append(pick)
        last = bounds[pick]
        for q in dependents[pick]:
            waiting[q] -= 1
            if waiting[q] == 0:
                ready.append(q)
    return order
