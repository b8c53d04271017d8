"""Cuts along topological orders: K-1 boundaries in one order, each at its target cumulative weight.

A prefix of the model's own node order is a poor cut (GoogLeNet at 10 % from the front cuts right
after conv1). We try several topological orders (the file's, breadth-first, depth-first, and
branch-finishing) and, for each boundary, the position within tolerance of its target that carries the
fewest bytes across; the caller keeps the best order.
"""

from __future__ import annotations

import heapq

from .graph import WeightedDag


def topological_orders(dag: WeightedDag) -> dict[str, list[int]]:
    n = len(dag.names)
    depth = [0] * n
    for v in range(n):
        depth[v] = max((depth[u] + 1 for u in dag.preds[v]), default=0)
    return {
        "file": list(range(n)),
        "breadth": _kahn(dag, lambda v: (depth[v], v)),
        "depth": _kahn(dag, lambda v: (-depth[v], v)),
        "late": _kahn(dag, lambda v: (-max((depth[s] for s in dag.succs[v]), default=n), v)),
    }


def _kahn(dag: WeightedDag, priority) -> list[int]:
    indegree = [len(p) for p in dag.preds]
    ready = [(priority(v), v) for v, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, v = heapq.heappop(ready)
        order.append(v)
        for s in dag.succs[v]:
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(ready, (priority(s), s))
    return order


def crossing_bytes(dag: WeightedDag, order: list[int]) -> list[int]:
    """crossing[p] = bytes written before position p and still read at or after p."""
    position = {v: i for i, v in enumerate(order)}
    delta = [0] * (len(order) + 2)
    for tensor, producer in dag.tensor_producer.items():
        last = max(position[c] for c in dag.tensor_consumers[tensor])
        first = position[producer] + 1
        if last >= first:
            delta[first] += dag.tensor_bytes[tensor]
            delta[last + 1] -= dag.tensor_bytes[tensor]
    crossing, running = [], 0
    for p in range(len(order) + 1):
        running += delta[p]
        crossing.append(running)
    return crossing


def cut_in_order(dag: WeightedDag, order: list[int], target_us: list[float], tolerance_us: float) -> list[int]:
    """Parts from K-1 boundaries in `order`: within tolerance of each target, fewest bytes crossing."""
    prefix = [0.0]
    for v in order:
        prefix.append(prefix[-1] + dag.weights_us[v])
    crossing = crossing_bytes(dag, order)
    boundaries, low = [], 1
    count = len(target_us)
    for b in range(count - 1):
        goal = sum(target_us[: b + 1])
        high = len(order) - (count - 1 - b)  # leave at least one node for every later part
        positions = range(low, high + 1)
        close = [p for p in positions if abs(prefix[p] - goal) <= tolerance_us]
        if close:
            best = min(close, key=lambda p: (crossing[p], abs(prefix[p] - goal)))
        else:
            best = min(positions, key=lambda p: (abs(prefix[p] - goal), crossing[p]))
        boundaries.append(best)
        low = best + 1
    parts = [0] * len(order)
    for i, v in enumerate(order):
        parts[v] = sum(1 for b in boundaries if i >= b)
    return parts
