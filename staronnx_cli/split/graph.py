"""The weighted DAG that partitioners work on (pure: no ORT, no METIS).

Vertices are compute nodes in topological order; a node fed only by initializers and constants (an
Identity on a weight, a Constant, a Shape of a weight) is not a vertex: it travels with its consumers.
Vertex weight = profiled time (us); an edge u -> v carries the bytes of the tensors u writes and v reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import onnx

from ..profile.controlflow import outer_reads


@dataclass
class WeightedDag:
    names: list[str]  # vertex -> node name, topological order
    weights_us: list[float]
    tensor_producer: dict[str, int]  # tensor -> vertex writing it (compute nodes only)
    tensor_consumers: dict[str, list[int]]  # tensor -> vertices reading it
    tensor_bytes: dict[str, int]  # bytes of each tensor at the split's batch size
    preds: list[set[int]] = field(default_factory=list)
    succs: list[set[int]] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.names)
        self.preds, self.succs = [set() for _ in range(n)], [set() for _ in range(n)]
        self._touching: list[list[str]] = [[] for _ in range(n)]
        for tensor, producer in self.tensor_producer.items():
            self._touching[producer].append(tensor)
            for consumer in set(self.tensor_consumers.get(tensor, [])):
                if consumer != producer:
                    self.succs[producer].add(consumer)
                    self.preds[consumer].add(producer)
                    self._touching[consumer].append(tensor)

    def vertex_tensors(self, v: int) -> list[str]:
        """Tensors between vertices that v writes or reads (their cut changes when v moves)."""
        return self._touching[v]

    @property
    def total_us(self) -> float:
        return sum(self.weights_us)

    def edges(self) -> dict[tuple[int, int], int]:
        """(u, v) -> bytes u sends to v."""
        weights: dict[tuple[int, int], int] = defaultdict(int)
        for tensor, producer in self.tensor_producer.items():
            for consumer in set(self.tensor_consumers.get(tensor, [])):
                if consumer != producer:
                    weights[(producer, consumer)] += self.tensor_bytes[tensor]
        return dict(weights)


def constant_nodes(graph: onnx.GraphProto) -> set[str]:
    """Nodes whose inputs are all initializers or outputs of other constant nodes; a subgraph's reads from the
    outer scope count (an If on a constant condition whose branches read an activation is no constant)."""
    constant_tensors = {i.name for i in graph.initializer}
    result = set()
    for node in graph.node:  # ONNX requires topological node order
        if all(not t or t in constant_tensors for t in _all_inputs(node)):
            result.add(node.name)
            constant_tensors.update(t for t in node.output if t)
    return result


def build_dag(model: onnx.ModelProto, node_us: dict[str, float], tensor_bytes: dict[str, int]) -> WeightedDag:
    graph = model.graph
    constants = constant_nodes(graph)
    compute = [n for n in graph.node if n.name not in constants]
    weights = _weights_with_constants(graph, constants, node_us)
    index = {n.name: i for i, n in enumerate(compute)}
    producer, consumers = {}, defaultdict(list)
    for node in compute:
        for t in node.output:
            if t:
                producer[t] = index[node.name]
        for t in _all_inputs(node):
            consumers[t].append(index[node.name])
    consumed = {t: c for t, c in consumers.items() if t in producer}
    return WeightedDag(names=[n.name for n in compute], weights_us=[weights[n.name] for n in compute],
                       tensor_producer={t: p for t, p in producer.items() if t in consumed},
                       tensor_consumers=dict(consumed), tensor_bytes={t: tensor_bytes[t] for t in consumed})


def _weights_with_constants(graph: onnx.GraphProto, constants: set[str], node_us: dict[str, float]
                            ) -> dict[str, float]:
    """Each compute node's time, plus that of the constant nodes it is the first to read (through other constants):
    ORT runs a QDQ model's weight DequantizeLinear on every run, in the part that holds its reader (extract.py
    copies it there); a constant folded at load costs 0. One read by several parts (tied weights) runs in each
    but is counted once, in its first reader's: an approximation that errs by that node's time."""
    weights = {n.name: float(node_us.get(n.name, 0.0)) for n in graph.node if n.name not in constants}
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for t in _all_inputs(node):
            readers[t].append(node)
    for node in graph.node:
        if node.name in constants and node_us.get(node.name):
            reader = _first_compute_reader(node, readers, constants)
            if reader:
                weights[reader] += float(node_us[node.name])
    return weights


def _first_compute_reader(node: onnx.NodeProto, readers: dict, constants: set[str]) -> str:
    """The first compute node reading what `node` makes, through constant nodes ('' when none does)."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop(0)
        for t in current.output:
            for reader in readers.get(t, []):
                if reader.name not in constants:
                    return reader.name
                if reader.name not in seen:
                    seen.add(reader.name)
                    todo.append(reader)
    return ""


def _all_inputs(node: onnx.NodeProto) -> list[str]:
    """Inputs of a node including names its subgraphs (If/Loop/Scan bodies) read from the outer scope."""
    return outer_reads(node)


# -- evaluating an assignment of vertices to parts ------------------------------------------------------

def is_chain(dag: WeightedDag, parts: list[int]) -> bool:
    """Every tensor flows forward: part(u) <= part(v) on every edge."""
    return all(parts[u] <= parts[v] for u in range(len(parts)) for v in dag.succs[u])


def cut_bytes(dag: WeightedDag, parts: list[int]) -> int:
    """Bytes moved between parts per batch: each tensor once per other part that reads it."""
    total = 0
    for tensor, producer in dag.tensor_producer.items():
        readers = {parts[c] for c in dag.tensor_consumers.get(tensor, [])} - {parts[producer]}
        total += dag.tensor_bytes[tensor] * len(readers)
    return total


def part_weights(dag: WeightedDag, parts: list[int], count: int) -> list[float]:
    weights = [0.0] * count
    for v, p in enumerate(parts):
        weights[p] += dag.weights_us[v]
    return weights


def offload_fraction(dag: WeightedDag, parts: list[int]) -> float:
    """Share of the compute time that is not in part 0 (the part the first device keeps)."""
    total = dag.total_us
    return sum(w for w, p in zip(dag.weights_us, parts) if p > 0) / total if total else 0.0


def targets(offload: float, count: int) -> list[float]:
    """Target share of each part: 1 - f for part 0, f shared equally by the later parts."""
    return [1.0 - offload] + [offload / (count - 1)] * (count - 1)
