"""Attribute the kernels ORT ran (an optimised graph) back to the nodes of the original model.

ORT rewrites the graph before running it (fusions such as Conv+Relu -> FusedConv, MatMul+Add -> Gemm,
Identity elimination, constant folding and, at level "all", NCHWc layout nodes). `split` needs a time
for every original compute node, so we map by *tensor regions*:

- an anchor is a tensor name present in both graphs;
- in each graph, nodes joined by a non-anchor tensor (one that exists only in that graph) form a region;
- an optimised region maps to the original regions producing the same anchors; overlapping maps merge
  into one group;
- a group's measured time is shared among its original nodes in proportion to a work estimate
  (multiply-accumulates for Conv/MatMul/Gemm, output elements otherwise).

At level "basic" nearly every group is one node, so times are measured, not estimated; at "all" groups
grow and the shares inside a group are an estimate. Original nodes whose region maps to no kernel were
folded into constants or eliminated: they get 0 us and say so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx

from ..modelio import shape_skeleton

MAC_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul"}


@dataclass(frozen=True)
class Attribution:
    node: str
    op_type: str
    kernels: tuple[str, ...]  # optimised kernels whose time this node shares ("" if none)
    share: float  # this node's share of those kernels' time (1.0 = all of it)
    how: str  # "exact", "fused" (share of a group) or "folded" (ran as no kernel)


class _UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


def _tensors(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {o.name for o in graph.output}
    for node in graph.node:
        names.update(t for t in node.input if t)
        names.update(t for t in node.output if t)
    return names


def _regions(graph: onnx.GraphProto, anchors: set[str], uf: _UnionFind, tag: str) -> None:
    """Union nodes of `graph` (keys (tag, name)) that share a produced non-anchor tensor."""
    producer = {}
    for node in graph.node:
        uf.find((tag, node.name))
        for t in node.output:
            if t:
                producer[t] = node.name
    for node in graph.node:
        for t in node.input:
            if t in producer and t not in anchors:
                uf.union((tag, node.name), (tag, producer[t]))


def attribute(original: onnx.ModelProto, optimised: onnx.ModelProto) -> list[Attribution]:
    """How each node of `original` relates to the kernels of `optimised` (node names)."""
    anchors = _tensors(original.graph) & _tensors(optimised.graph)
    uf = _UnionFind()
    _regions(original.graph, anchors, uf, "o")
    _regions(optimised.graph, anchors, uf, "k")
    # Join each optimised node to the original producer of every anchor it produces.
    original_producer = {t: n.name for n in original.graph.node for t in n.output if t}
    for node in optimised.graph.node:
        for t in node.output:
            if t in anchors and t in original_producer:
                uf.union(("k", node.name), ("o", original_producer[t]))

    groups: dict = defaultdict(lambda: ([], []))
    for node in original.graph.node:
        groups[uf.find(("o", node.name))][0].append(node)
    for node in optimised.graph.node:
        groups[uf.find(("k", node.name))][1].append(node.name)

    work = _work_estimates(original)
    result = []
    for originals, kernels in groups.values():
        if not originals:
            continue  # ORT-only nodes with no original counterpart cannot occur after the union above
        if not kernels:
            result += [Attribution(n.name, n.op_type, (), 0.0, "folded") for n in originals]
            continue
        exact = len(originals) == 1 and len(kernels) == 1 and kernels[0] == originals[0].name
        total = sum(work.get(n.name, 1.0) for n in originals)
        for n in originals:
            share = 1.0 if len(originals) == 1 else work.get(n.name, 1.0) / total
            result.append(Attribution(n.name, n.op_type, tuple(sorted(kernels)), share,
                                      "exact" if exact else "fused"))
    order = {n.name: i for i, n in enumerate(original.graph.node)}
    return sorted(result, key=lambda a: order[a.node])


def _work_estimates(model: onnx.ModelProto) -> dict[str, float]:
    """Rough work per node at batch 1: MACs for Conv/MatMul/Gemm, output elements otherwise."""
    try:
        inferred = onnx.shape_inference.infer_shapes(shape_skeleton(model, 1), strict_mode=False)
    except Exception:  # noqa: BLE001 - without shapes every node weighs the same
        return {}
    elements = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
        elements[value.name] = float(np.prod(sizes)) if sizes else 1.0
    weight_dims = {i.name: list(i.dims) for i in model.graph.initializer}
    work = {}
    for node in model.graph.node:
        out = sum(elements.get(t, 1.0) for t in node.output if t)
        reduction = 1.0
        if node.op_type in MAC_OPS and len(node.input) > 1 and node.input[1] in weight_dims:
            dims = weight_dims[node.input[1]]
            reduction = float(np.prod(dims[1:])) if node.op_type.startswith("Conv") else float(dims[0])
        work[node.name] = max(out * reduction, 1.0)
    return work


def _has_cast(members: list[dict]) -> bool:
    """ORT inserted Casts among the group's kernels (float16 on a CPU: its kernels run in float32)."""
    return any("Cast" in kernel for r in members for kernel in str(r["kernels"]).split())


ESTIMATED_SHARE = 0.25  # a group of this share of the time or more, over several nodes and kernels, is said


def estimated_group_warning(batch_size: int, rows: list[dict]) -> str:
    """A large group whose time is shared among its nodes by the work estimate (ORT rewrote the graph there at level
    basic: float16 on CPU wraps it in Casts and decomposes Softmax), so those nodes' times, and a cut between them,
    rest on an estimate; '' when no such group weighs."""
    total = sum(r["mean_us"] for r in rows) or 1.0
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["how"] == "fused":
            groups[r["kernels"]].append(r)
    kernels, members = max(groups.items(), key=lambda g: sum(r["mean_us"] for r in g[1]), default=("", []))
    share = sum(r["mean_us"] for r in members) / total
    if len(members) < 3 or len(kernels.split()) < 3 or share < ESTIMATED_SHARE:
        return ""
    casts = " (float16 on CPU adds Casts around it)" if _has_cast(members) else ""
    return (f"batch {batch_size}: {share:.0%} of the node time is one group of {len(kernels.split())} kernels "
            f"shared among {len(members)} nodes ({members[0]['node']} ... {members[-1]['node']}) by a work estimate: "
            f"ONNX Runtime rewrote the graph there{casts}"
            ", so those nodes' times are estimates and a split between them is cut on an estimate, not a measurement")
