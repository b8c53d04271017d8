"""Branch plans: the fewest chains that cover a DAG (checked against brute force), groups cut into acyclic parts."""

import itertools
import random

import pytest

from staronnx_cli.split.branches import assign_groups, chain_cover, critical_path_us, cut_groups, merge_small, width
from staronnx_cli.split.graph import WeightedDag, is_chain


def dag_of(edges: list[tuple[int, int]], n: int, weights: list[float] | None = None) -> WeightedDag:
    """A DAG on vertices 0..n-1 (edges u < v): vertex u writes tensor tu, read by its successors."""
    consumers = {f"t{u}": [v for a, v in edges if a == u] for u in range(n)}
    consumers = {t: c for t, c in consumers.items() if c}
    return WeightedDag([f"n{v}" for v in range(n)], weights or [1.0] * n, {t: int(t[1:]) for t in consumers},
                       consumers, {t: 4 for t in consumers})


def random_dag(rng: random.Random, n: int, density: float) -> WeightedDag:
    edges = [(u, v) for u in range(n) for v in range(u + 1, n) if rng.random() < density]
    return dag_of(edges, n, [float(rng.randint(1, 9)) for _ in range(n)])


def reachable(dag: WeightedDag) -> list[set[int]]:
    below: list[set[int]] = [set() for _ in dag.names]
    for v in reversed(range(len(dag.names))):
        for s in dag.succs[v]:
            below[v] |= below[s] | {s}
    return below


def components(dag: WeightedDag) -> int:
    label = list(range(len(dag.names)))

    def root(v: int) -> int:
        while label[v] != v:
            v = label[v]
        return v

    for v in range(len(dag.names)):
        for s in dag.succs[v]:
            label[root(s)] = root(v)
    return len({root(v) for v in range(len(dag.names))})


def largest_antichain(dag: WeightedDag) -> int:
    below = reachable(dag)
    n = len(dag.names)
    for size in range(n, 0, -1):
        for subset in itertools.combinations(range(n), size):
            if all(b not in below[a] and a not in below[b] for a, b in itertools.combinations(subset, 2)):
                return size
    return 0


def test_the_chain_cover_is_minimal_and_valid_on_small_dags_against_brute_force():
    rng = random.Random(3)
    for trial in range(60):
        dag = random_dag(rng, rng.randint(1, 9), rng.choice([0.1, 0.3, 0.6]))
        chains, below = chain_cover(dag), reachable(dag)
        assert sorted(v for c in chains for v in c) == list(range(len(dag.names)))  # every vertex exactly once
        assert all(b in below[a] for c in chains for a, b in zip(c, c[1:]))  # each chain a path of the closure
        assert len(chains) == largest_antichain(dag), trial  # Dilworth: no cover has fewer chains


def test_four_branches_between_a_fork_and_a_join_are_four_chains_and_two_streams_cut_into_acyclic_parts():
    # 0 -> {1, 2->3, 4->5, 6} -> 7 -> 8 : an inception block
    edges = [(0, 1), (0, 2), (2, 3), (0, 4), (4, 5), (0, 6), (1, 7), (3, 7), (5, 7), (6, 7), (7, 8)]
    dag = dag_of(edges, 9, [5, 1, 2, 6, 2, 4, 1, 1, 5])
    assert width(dag) == 4
    group = assign_groups(dag, 2)
    assert group[0] == group[7] == group[8] == 0  # the fork, the join and after: nothing runs beside them
    cut = cut_groups(dag, group)
    assert is_chain(dag, cut.parts)  # every tensor flows from a part to a later one
    assert len(set(cut.groups)) == 2 and all(cut.groups[cut.parts[v]] == group[v] for v in range(9))
    assert all(d < p for p, ds in enumerate(cut.deps) for d in ds)
    weights = [sum(w for v, w in enumerate(dag.weights_us) if cut.parts[v] == p) for p in range(len(cut.deps))]
    assert critical_path_us(weights, cut.deps) < dag.total_us  # two branches overlap


def test_any_grouping_of_a_random_dag_is_cut_into_acyclic_single_group_parts():
    rng = random.Random(11)
    for _ in range(200):
        dag = random_dag(rng, rng.randint(2, 30), rng.choice([0.05, 0.15, 0.4]))
        group = [rng.randrange(3) for _ in dag.names]
        cut = cut_groups(dag, group)
        assert is_chain(dag, cut.parts)
        assert all(cut.groups[cut.parts[v]] == group[v] for v in range(len(group)))
        needed = [{cut.parts[u] for v in range(len(group)) if cut.parts[v] == p for u in dag.preds[v]} - {p}
                  for p in range(len(cut.deps))]
        assert [sorted(n) for n in needed] == cut.deps


def test_a_chain_of_nodes_has_width_one_and_one_part():
    dag = dag_of([(v, v + 1) for v in range(5)], 6)
    assert width(dag) == 1
    cut = cut_groups(dag, assign_groups(dag, 4))
    assert set(cut.parts) == {0} and cut.deps == [[]]


def test_parts_too_small_to_be_worth_a_task_join_a_neighbour_and_the_graph_stays_acyclic():
    rng = random.Random(5)
    for _ in range(150):
        dag = random_dag(rng, rng.randint(2, 25), rng.choice([0.1, 0.3]))
        cut = cut_groups(dag, [rng.randrange(3) for _ in dag.names])
        floor = rng.choice([0.0, 5.0, 15.0, 1e9])
        merged = merge_small(cut, dag.weights_us, floor)
        assert is_chain(dag, merged.parts) and all(d < p for p, ds in enumerate(merged.deps) for d in ds)
        work = [sum(w for v, w in enumerate(dag.weights_us) if merged.parts[v] == p) for p in range(len(merged.deps))]
        assert sorted(set(merged.parts)) == list(range(len(merged.deps)))  # no empty part
        if floor == 0.0:
            assert merged == cut
        if floor == 1e9:  # joined down to one part per connected piece of the DAG
            assert len(work) <= components(dag)
        needed = [{merged.parts[u] for v in range(len(dag.names)) if merged.parts[v] == p for u in dag.preds[v]} - {p}
                  for p in range(len(merged.deps))]
        assert [sorted(n) for n in needed] == merged.deps


def test_a_small_join_is_kept_apart_when_joining_it_would_make_one_branch_wait_for_the_other():
    # 0 -> {1, 2->3, 4->5, 6} -> 7: the join weighs 1, each stream's branches 8
    edges = [(0, 1), (0, 2), (2, 3), (0, 4), (4, 5), (0, 6), (1, 7), (3, 7), (5, 7), (6, 7)]
    dag = dag_of(edges, 8, [5, 1, 2, 6, 2, 4, 1, 1])
    cut = cut_groups(dag, assign_groups(dag, 2))
    assert len(cut.deps) == 4  # the fork, two streams of branches, the join

    def path(c):
        work = [sum(w for v, w in enumerate(dag.weights_us) if c.parts[v] == p) for p in range(len(c.deps))]
        return critical_path_us(work, c.deps)

    assert path(cut) == 5 + 8 + 1
    kept = merge_small(cut, dag.weights_us, 1.5)  # joined to either stream, it would wait for the other: +8 us
    assert kept == cut
    joined = merge_small(cut, dag.weights_us, 10.0)  # worth it when a task costs more than that
    assert len(joined.deps) < 4 and path(joined) > path(cut)


def test_a_fork_join_plans_figures_are_what_arithmetic_says():
    """a (10 us) -> {b (40), c (30)} -> d (10), two streams: the heavier branch stays with the main chain, the
    other is a third of the work; with a worker per part the batch takes a + b + d = 60 us of its 90 (1.5 x)."""
    from staronnx_cli.split.partition import split_branches

    dag = WeightedDag(["a", "b", "c", "d"], [10.0, 40.0, 30.0, 10.0], {"ta": 0, "tb": 1, "tc": 2},
                      {"ta": [1, 2], "tb": [3], "tc": [3]}, {"ta": 100, "tb": 100, "tc": 100})
    plan = split_branches(dag, 2, 0.0)
    assert plan.to_json(dag.total_us) == {"streams": 2, "width": 2, "groups": [0, 0, 1, 0], "critical_path_us": 60.0,
                                          "total_us": 90.0, "parallelism": 1.5, "node_critical_path_us": 60.0}
    assert plan.candidate.fraction == pytest.approx(30 / 90)  # the work off the main stream
    assert plan.cut.deps == [[], [0], [0], [1, 2]] and plan.candidate.cut_bytes == 400  # ta twice, tb, tc
