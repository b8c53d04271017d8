"""Write each part as its own ONNX model: its nodes, the constants and initializers they need, clear I/O.

Built directly with onnx.helper from the source graph (onnx.utils.extract_model re-checks and re-infers
the whole model for every part, slow on large models). A part whose weights exceed 1.5 GB is saved with
external data beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper

from .graph import WeightedDag, _all_inputs, constant_nodes
from .tensors import TensorInfo

EXTERNAL_DATA_THRESHOLD = 1_500_000_000


@dataclass(frozen=True)
class PartIO:
    inputs: list[str]
    outputs: list[str]
    node_names: list[str]


def part_io(model: onnx.ModelProto, dag: WeightedDag, parts: list[int], count: int) -> list[PartIO]:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    constants = constant_nodes(graph)
    part_of = {name: parts[v] for v, name in enumerate(dag.names)}
    producer_node = {t: n for n in graph.node for t in n.output if t}
    model_outputs = [o.name for o in graph.output]
    readers: dict[str, set[int]] = {}
    for node in graph.node:
        if node.name in part_of:
            for t in _all_inputs(node):
                readers.setdefault(t, set()).add(part_of[node.name])
    computed = {t for n in graph.node if n.name in part_of for t in n.output if t}
    orphans = [t for t in model_outputs if t not in computed]  # from weights alone, a weight, or an input as is
    result = []
    for p in range(count):
        compute = [n for n in graph.node if part_of.get(n.name) == p]
        needed_constants: set[str] = set()
        last = orphans if p == count - 1 else []  # the last part writes them
        stack = [t for n in compute for t in _all_inputs(n)] + last
        while stack:
            t = stack.pop()
            node = producer_node.get(t)
            if node is not None and node.name in constants and node.name not in needed_constants:
                needed_constants.add(node.name)
                stack.extend(_all_inputs(node))
        names = {n.name for n in compute} | needed_constants
        nodes = [n for n in graph.node if n.name in names]
        produced = {t for n in nodes for t in n.output if t}
        inputs = []
        for t in [t for n in nodes for t in _all_inputs(n)] + last:
            if t not in produced and t not in initializers and t not in inputs:
                inputs.append(t)
        outputs = [t for n in compute for t in n.output
                   if t and (t in model_outputs or any(q != p for q in readers.get(t, ())))] + last
        result.append(PartIO(inputs, outputs, [n.name for n in nodes]))
    return result


def _value_info(name: str, info: TensorInfo | None, originals: dict[str, onnx.ValueInfoProto]) -> onnx.ValueInfoProto:
    if name in originals:  # the model's own inputs and outputs, as declared
        return originals[name]
    assert info is not None, name
    return helper.make_tensor_value_info(name, info.onnx_type, list(info.shape))


def write_part(model: onnx.ModelProto, io: PartIO, index: int, tensors: dict[str, TensorInfo], path: Path) -> int:
    """Save part `index` to `path`; returns the bytes of its weights."""
    graph = model.graph
    originals = {v.name: v for v in list(graph.input) + list(graph.output)}
    names = set(io.node_names)
    nodes = [n for n in graph.node if n.name in names]
    referenced = {t for n in nodes for t in _all_inputs(n)} | set(io.outputs)  # a weight may be a model output
    weights = [i for i in graph.initializer if i.name in referenced]
    part_graph = helper.make_graph(
        nodes, f"{graph.name}_part{index}",
        [_value_info(t, tensors.get(t), originals) for t in io.inputs],
        [_value_info(t, tensors.get(t), originals) for t in io.outputs],
        weights)
    part = helper.make_model(part_graph, opset_imports=list(model.opset_import),
                             producer_name="staronnx-split")
    part.ir_version = model.ir_version
    size = sum(len(w.raw_data) for w in weights)
    if size > EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(part, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.stem + ".data", size_threshold=1024)
    else:
        onnx.save_model(part, str(path))
    return size

