"""Turn any assignment of vertices to parts into an acyclic chain, then move boundary nodes toward the targets.

METIS minimises the cut but knows nothing of direction: tensors may flow from part 1 back to part 0. A
chain needs part(u) <= part(v) on every edge. Two repairs guarantee it: *lift* (topological order, a node
goes no earlier than its latest predecessor) and *lower* (reverse order, no later than its earliest
successor). `refine` then moves single boundary nodes between neighbouring parts, keeping the chain
property, while that brings part weights closer to their targets, preferring moves that cut fewer bytes.
"""

from __future__ import annotations

from .graph import WeightedDag


def lift(dag: WeightedDag, parts: list[int]) -> list[int]:
    result = list(parts)
    for v in range(len(result)):  # vertices are in topological order
        if dag.preds[v]:
            result[v] = max(result[v], max(result[u] for u in dag.preds[v]))
    return result


def lower(dag: WeightedDag, parts: list[int]) -> list[int]:
    result = list(parts)
    for v in reversed(range(len(result))):
        if dag.succs[v]:
            result[v] = min(result[v], min(result[s] for s in dag.succs[v]))
    return result


def _move_cut_delta(dag: WeightedDag, parts: list[int], v: int, to: int) -> int:
    """Change of cut bytes if v moved to part `to` (computed on v's own tensors and inputs)."""
    before = _local_cut(dag, parts, v)
    old = parts[v]
    parts[v] = to
    after = _local_cut(dag, parts, v)
    parts[v] = old
    return after - before


def _local_cut(dag: WeightedDag, parts: list[int], v: int) -> int:
    total = 0
    for tensor in dag.vertex_tensors(v):
        producer = dag.tensor_producer[tensor]
        readers = {parts[c] for c in dag.tensor_consumers.get(tensor, [])} - {parts[producer]}
        total += dag.tensor_bytes[tensor] * len(readers)
    return total


def refine(dag: WeightedDag, parts: list[int], target_us: list[float], tolerance_us: float,
           max_moves: int | None = None) -> list[int]:
    """Greedy boundary moves between parts i and i+1 until each boundary's weight is within tolerance."""
    parts = list(parts)
    count = len(target_us)
    weights = [0.0] * count
    for v, p in enumerate(parts):
        weights[p] += dag.weights_us[v]
    budget = max_moves if max_moves is not None else 4 * len(parts)
    for boundary in range(count - 1):
        # cumulative weight up to and including part `boundary` should match its target
        for _ in range(budget):
            before = sum(weights[: boundary + 1])
            goal = sum(target_us[: boundary + 1])
            excess = before - goal
            if abs(excess) <= tolerance_us:
                break
            if excess > 0:  # too heavy before the boundary: move a node of `boundary` whose successors are later
                candidates = [v for v, p in enumerate(parts) if p == boundary
                              and all(parts[s] > boundary for s in dag.succs[v])]
                to = boundary + 1
            else:  # too light: pull a node of `boundary + 1` whose predecessors are all earlier
                candidates = [v for v, p in enumerate(parts) if p == boundary + 1
                              and all(parts[u] <= boundary for u in dag.preds[v])]
                to = boundary
            source = boundary if excess > 0 else boundary + 1
            if sum(1 for p in parts if p == source) <= 1:
                break  # every part keeps at least one node
            best = None
            for v in candidates:
                w = dag.weights_us[v]
                new_error = abs(abs(excess) - w)
                if new_error >= abs(excess):
                    continue
                key = (_move_cut_delta(dag, parts, v, to), new_error)
                if best is None or key < best[0]:
                    best = (key, v)
            if best is None:
                break
            v = best[1]
            weights[parts[v]] -= dag.weights_us[v]
            weights[to] += dag.weights_us[v]
            parts[v] = to
    return parts
