"""The partitioning methods, each returning its best acyclic cut (a chain of parts, or a DAG of branches), and the
rule that picks between them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .branches import BranchCut, assign_groups, critical_path_us, cut_groups, merge_small, width
from .graph import WeightedDag, cut_bytes, is_chain, offload_fraction, part_weights, targets
from .metis import metis_parts
from .repair import lift, lower, refine
from .topo import cut_in_order, topological_orders


@dataclass(frozen=True)
class Candidate:
    method: str  # "metis", "topo" or "branches"
    detail: str  # the seed and repair, or the topological order used
    parts: tuple[int, ...]
    fraction: float  # achieved offload fraction
    cut_bytes: int
    part_us: tuple[float, ...]

    def score(self, offload: float, tolerance: float) -> tuple:
        """Within tolerance: fewest cut bytes; otherwise: closest fraction first."""
        miss = abs(self.fraction - offload)
        return (0, self.cut_bytes, miss) if miss <= tolerance else (1, miss, self.cut_bytes)


def _candidate(dag: WeightedDag, method: str, detail: str, parts: list[int], count: int) -> Candidate:
    assert is_chain(dag, parts), "a repaired partition must be an acyclic chain"
    return Candidate(method, detail, tuple(parts), offload_fraction(dag, parts), cut_bytes(dag, parts),
                     tuple(part_weights(dag, parts, count)))


def best(candidates: list[Candidate], offload: float, tolerance: float) -> Candidate:
    return min(candidates, key=lambda c: c.score(offload, tolerance))


def _relabel_by_position(parts: list[int]) -> list[int]:
    """METIS labels carry no order: number parts by the mean topological position of their nodes."""
    positions: dict[int, list[int]] = {}
    for v, p in enumerate(parts):
        positions.setdefault(p, []).append(v)
    ranked = sorted(positions, key=lambda p: sum(positions[p]) / len(positions[p]))
    mapping = {p: i for i, p in enumerate(ranked)}
    return [mapping[p] for p in parts]


def split_metis(dag: WeightedDag, offload: float, count: int, tolerance: float, seeds: range) -> Candidate:
    shares = targets(offload, count)
    target_us = [s * dag.total_us for s in shares]
    found = []
    for seed in seeds:
        raw = _relabel_by_position(metis_parts(dag, shares, seed))
        for name, repair in (("lift", lift), ("lower", lower)):
            parts = refine(dag, repair(dag, raw), target_us, tolerance * dag.total_us / 2)
            if len(set(parts)) == count:
                found.append(_candidate(dag, "metis", f"seed {seed}, {name}", parts, count))
    if not found:  # METIS gave fewer non-empty parts than asked on every seed: say so, keep the topo cut
        fallback = split_topo(dag, offload, count, tolerance)
        return replace(fallback, detail=f"{fallback.detail} (METIS found no {count}-part split on any seed)")
    return best(found, offload, tolerance)


def split_topo(dag: WeightedDag, offload: float, count: int, tolerance: float) -> Candidate:
    target_us = [s * dag.total_us for s in targets(offload, count)]
    found = []
    for name, order in topological_orders(dag).items():
        parts = cut_in_order(dag, order, target_us, tolerance * dag.total_us / (count - 1))
        found.append(_candidate(dag, "topo", f"{name} order", parts, count))
    return best(found, offload, tolerance)


@dataclass(frozen=True)
class BranchPlan:
    """A branch plan's cut and what it says of the model's parallelism (plan.json's `dag`)."""

    candidate: Candidate
    cut: BranchCut
    width: int  # the most nodes that can run at once (the fewest chains covering the DAG)
    streams: int
    critical_path_us: float  # through the parts' graph: the least time with a worker per part
    node_critical_path_us: float  # through the nodes' graph: the least time any plan could reach

    def to_json(self, total_us: float) -> dict:
        return {"streams": self.streams, "width": self.width, "groups": list(self.cut.groups),
                "critical_path_us": round(self.critical_path_us, 1), "total_us": round(total_us, 1),
                "parallelism": round(total_us / self.critical_path_us, 3) if self.critical_path_us else 1.0,
                "node_critical_path_us": round(self.node_critical_path_us, 1)}


def split_branches(dag: WeightedDag, streams: int, min_part_us: float) -> BranchPlan:
    """Opara's chains as parts: the fewest chains covering the DAG, merged into `streams` groups by their work, cut
    into acyclic parts, the parts under `min_part_us` joined to a neighbour."""
    wide = width(dag)
    cut = merge_small(cut_groups(dag, assign_groups(dag, streams)), dag.weights_us, min_part_us)
    count = len(cut.deps)
    parts = list(cut.parts)
    work = part_weights(dag, parts, count)
    off_main = sum(w for w, g in zip(work, cut.groups) if g != 0) / dag.total_us if dag.total_us else 0.0
    detail = f"width {wide}, {min(streams, wide)} streams, {count} parts"
    assert is_chain(dag, parts), "a branch plan's parts must be numbered in a topological order"
    candidate = Candidate("branches", detail, tuple(parts), off_main, cut_bytes(dag, parts), tuple(work))
    nodes = critical_path_us(dag.weights_us, [sorted(p) for p in dag.preds])
    return BranchPlan(candidate, cut, wide, streams, critical_path_us(work, cut.deps), nodes)
