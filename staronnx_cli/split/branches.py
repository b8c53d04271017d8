"""Branch plans (Opara's stream allocation, as parts): the fewest chains that cover the operator DAG, merged into
at most K groups by the profile's times, then cut into parts whose dependencies form a DAG, so that a batch's
independent branches run on several workers at once.

A chain here is a path of the DAG's transitive closure (its nodes need not be adjacent): Dilworth's theorem makes
the fewest such chains n minus a maximum matching of the closure's bipartite graph (Fulkerson), which is what
Opara computes to give each chain a CUDA stream. A stream may wait for another at any node (an event); a part
cannot (it runs whole, as one task, and its outputs appear when it ends), so a group is cut where another group
could start inside it and where it starts waiting for another: the parts' graph stays acyclic and no branch waits
for work it does not need."""

from __future__ import annotations

from dataclasses import dataclass

from .graph import WeightedDag


def closure(dag: WeightedDag) -> list[int]:
    """below[v]: the vertices reachable from v, as a bit set (vertices are in topological order)."""
    below = [0] * len(dag.names)
    for v in reversed(range(len(dag.names))):
        bits = 0
        for s in dag.succs[v]:
            bits |= below[s] | (1 << s)
        below[v] = bits
    return below


def _bits(value: int) -> list[int]:
    out = []
    while value:
        low = value & -value
        out.append(low.bit_length() - 1)
        value ^= low
    return out


def max_matching(adjacency: list[list[int]], right: int) -> list[int]:
    """Hopcroft-Karp: match[u] = the right vertex u is matched to, or -1."""
    match_left, match_right = [-1] * len(adjacency), [-1] * right
    while True:
        layer = _bfs_layers(adjacency, match_left, match_right)
        if layer is None:
            return match_left
        for u in range(len(adjacency)):
            if match_left[u] == -1:
                _augment(u, adjacency, match_left, match_right, layer)


def _bfs_layers(adjacency, match_left, match_right) -> list[int] | None:
    """Distances of left vertices from the free ones along alternating paths; None when no path is augmenting."""
    infinity = len(adjacency) + 1
    layer = [0 if m == -1 else infinity for m in match_left]
    queue, found, head = [u for u, m in enumerate(match_left) if m == -1], False, 0
    while head < len(queue):
        u = queue[head]
        head += 1
        for v in adjacency[u]:
            w = match_right[v]
            if w == -1:
                found = True
            elif layer[w] == infinity:
                layer[w] = layer[u] + 1
                queue.append(w)
    return layer if found else None


def _augment(start: int, adjacency, match_left, match_right, layer) -> bool:
    """One augmenting path from `start` along the layers (iterative: deep DAGs would overflow recursion)."""
    stack, edge = [start], {start: 0}
    while stack:
        u = stack[-1]
        if edge[u] == len(adjacency[u]):
            layer[u] = len(adjacency) + 1  # a dead end for the rest of this phase
            stack.pop()
            continue
        v = adjacency[u][edge[u]]
        edge[u] += 1
        w = match_right[v]
        if w == -1:
            for left in reversed(stack):  # flip the path: each left vertex takes the right one it reached
                right = adjacency[left][edge[left] - 1]
                match_left[left], match_right[right] = right, left
            return True
        if layer[w] == layer[u] + 1 and w not in edge:
            edge[w] = 0
            stack.append(w)
    return False


def chain_cover(dag: WeightedDag) -> list[list[int]]:
    """The fewest chains (paths of the transitive closure) that cover every vertex, each in topological order."""
    return _cover(closure(dag), list(range(len(dag.names))))


def _cover(below: list[int], vertices: list[int]) -> list[list[int]]:
    """The fewest chains covering `vertices` (n minus a maximum matching of their closure's bipartite graph)."""
    mask = 0
    for v in vertices:
        mask |= 1 << v
    match = max_matching([_bits(below[v] & mask) for v in vertices], len(below))
    after = {v: m for v, m in zip(vertices, match) if m != -1}
    has_before = set(after.values())
    chains = []
    for v in vertices:
        if v not in has_before:
            chain = [v]
            while chain[-1] in after:
                chain.append(after[chain[-1]])
            chains.append(chain)
    return chains


def width(dag: WeightedDag) -> int:
    """The most vertices that can run at once (Dilworth: the size of the fewest chains' cover)."""
    return len(chain_cover(dag))


def assign_groups(dag: WeightedDag, streams: int) -> list[int]:
    """vertex -> group (stream). A vertex that can run beside no other (a fork, a join, the stem) is a barrier in
    group 0; between two barriers, the fewest chains covering the vertices there (an inception block's branches)
    are given, heaviest first, to the group with the least work so far (LPT), so each stretch is balanced on its
    own."""
    below = closure(dag)
    above = ancestors(below)
    everyone = (1 << len(dag.names)) - 1
    group = [0] * len(dag.names)
    stretch: list[int] = []
    for v in [*range(len(dag.names)), None]:
        if v is not None and below[v] | above[v] | (1 << v) != everyone:
            stretch.append(v)
            continue
        chains = _cover(below, stretch)
        totals = [0.0] * max(1, min(streams, len(chains)))
        for chain in sorted(chains, key=lambda c: (-sum(dag.weights_us[u] for u in c), c[0])):
            g = min(range(len(totals)), key=lambda k: (totals[k], k))
            totals[g] += sum(dag.weights_us[u] for u in chain)
            for u in chain:
                group[u] = g
        stretch = []
    return group


@dataclass(frozen=True)
class BranchCut:
    parts: list[int]  # vertex -> part, parts numbered in a topological order of their graph
    groups: list[int]  # part -> the group (stream) it belongs to
    deps: list[list[int]]  # part -> the parts it reads from


def cut_groups(dag: WeightedDag, group: list[int]) -> BranchCut:
    """Each group's vertices, in topological order, fill its open part; a new part begins before vertex v (the
    group's previous vertex being a) when another group has a vertex that waits for a but not for v (it could start
    between them), when v waits for a vertex of another group that a does not (the part would hold a back), or when
    v needs a part that waits for the open one (a cycle). The parts' graph is acyclic by construction."""
    below = closure(dag)
    above = ancestors(below)
    members = [0] * (max(group, default=0) + 1)
    for v, g in enumerate(group):
        members[g] |= 1 << v
    everyone = (1 << len(group)) - 1
    part = [-1] * len(dag.names)
    deps: list[set[int]] = []
    dependents: list[set[int]] = []
    owner: list[int] = []
    last: dict[int, int] = {}  # group -> its latest vertex (in its open part)
    for v in range(len(dag.names)):
        g, a = group[v], last.get(group[v])
        others = everyone & ~members[g]
        current = part[a] if a is not None else None
        needed = {part[u] for u in dag.preds[v]}
        if a is None or current is None or (below[a] & ~below[v] & others) or (above[v] & ~above[a] & others) or \
                any(p != current and _reaches(dependents, current, p) for p in needed):
            current = len(deps)
            deps.append(set())
            dependents.append(set())
            owner.append(g)
        part[v], last[g] = current, v
        for p in needed - {current}:
            deps[current].add(p)
            dependents[p].add(current)
    order = _topological(deps)
    number = {p: i for i, p in enumerate(order)}
    return BranchCut([number[p] for p in part], [owner[p] for p in order],
                     [sorted(number[d] for d in deps[p]) for p in order])


def ancestors(below: list[int]) -> list[int]:
    """above[v]: the vertices v is reachable from, as a bit set."""
    above = [0] * len(below)
    for u, bits in enumerate(below):
        for v in _bits(bits):
            above[v] |= 1 << u
    return above


def merge_small(cut: BranchCut, weights_us: list[float], min_us: float) -> BranchCut:
    """Parts joined while a join is worth a task: each round, of the joins the graph allows (a part and one it
    reads from, with no other path between them, so the graph stays acyclic), the one that lengthens the critical
    path least is made if it lengthens it by less than `min_us`, about what the task it saves costs. A join that
    costs more is not made: a concat joined to a branch would make that branch wait for its sibling."""
    count = len(cut.deps)
    work = [0.0] * count
    for v, p in enumerate(cut.parts):
        work[p] += weights_us[v]
    deps = {p: set(d) for p, d in enumerate(cut.deps)}
    into = list(range(count))
    while len(deps) > 1:
        join = _cheapest_join(deps, work)
        if join is None or join[0] >= min_us:
            break
        _, first, second = join
        deps = _joined(deps, first, second)
        work[first] += work[second]
        into = [first if q == second else q for q in into]
    order = _topological([deps.get(p, set()) for p in range(count)])
    order = [p for p in order if p in deps]
    number = {p: i for i, p in enumerate(order)}
    return BranchCut([number[into[p]] for p in cut.parts], [cut.groups[p] for p in order],
                     [sorted(number[d] for d in deps[p]) for p in order])


def _cheapest_join(deps: dict[int, set[int]], work: list[float]) -> tuple[float, int, int] | None:
    """(how much longer the critical path gets, first, second) of the cheapest allowed join, lightest on ties.
    Joined, the two start when the last input of either is ready and end before any reader of either starts;
    every other path keeps its length, so the new critical path is the longer of the old one and the one through
    the joined part (head: the longest path ending at a part; tail: starting at it)."""
    order = _topological_of(deps)
    dependents = _dependents(deps)
    head: dict[int, float] = {}
    for p in order:
        head[p] = work[p] + max((head[d] for d in deps[p]), default=0.0)
    tail: dict[int, float] = {}
    below: dict[int, int] = {}  # the parts reachable from p, as a bit set
    for p in reversed(order):
        tail[p] = work[p] + max((tail[r] for r in dependents[p]), default=0.0)
        bits = 0
        for r in dependents[p]:
            bits |= below[r] | (1 << r)
        below[p] = bits
    longest = max(head.values(), default=0.0)
    best: tuple[float, float, int, int] | None = None
    for second, sources in deps.items():
        for first in sources:
            if any(below[first] >> q & 1 for q in sources - {first}):
                continue  # another path joins them: joined, they would form a cycle
            before = max((head[d] for d in (deps[first] | sources) - {first}), default=0.0)
            after = max((tail[r] for r in (dependents[first] | dependents[second]) - {second}), default=0.0)
            longer = max(0.0, before + work[first] + work[second] + after - longest)
            key = (longer, work[first] + work[second], first, second)
            best = key if best is None or key < best else best
    return None if best is None else (best[0], best[2], best[3])


def _dependents(deps: dict[int, set[int]]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {p: set() for p in deps}
    for p, ds in deps.items():
        for d in ds:
            out[d].add(p)
    return out


def _joined(deps: dict[int, set[int]], first: int, second: int) -> dict[int, set[int]]:
    """The graph with `second` joined into `first` (first runs before second)."""
    out = {p: {first if d == second else d for d in ds} for p, ds in deps.items() if p != second}
    out[first] = (deps[first] | deps[second]) - {first, second}
    return out


def _topological_of(deps: dict[int, set[int]]) -> list[int]:
    keys = sorted(deps)
    index = {p: i for i, p in enumerate(keys)}
    return [keys[i] for i in _topological([{index[d] for d in deps[p]} for p in keys])]


def _reaches(dependents: list[set[int]] | dict[int, set[int]], start: int, goal: int) -> bool:
    """Whether `goal` waits for `start`, directly or through other parts."""
    seen, stack = {start}, [start]
    while stack:
        for nxt in dependents[stack.pop()]:
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _topological(deps: list[set[int]]) -> list[int]:
    """Parts in an order where each comes after those it reads from (creation order breaks ties)."""
    waiting = [len(d) for d in deps]
    dependents: list[list[int]] = [[] for _ in deps]
    for p, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(p)
    ready, order = sorted(p for p, w in enumerate(waiting) if w == 0), []
    while ready:
        p = ready.pop(0)
        order.append(p)
        for q in dependents[p]:
            waiting[q] -= 1
            if waiting[q] == 0:
                ready.append(q)
        ready.sort()
    assert len(order) == len(deps), "the parts' graph must be acyclic"
    return order


def critical_path_us(weights: list[float], deps: list[list[int]]) -> float:
    """The longest path through a DAG given in topological order (the least time with unbounded workers)."""
    finish: list[float] = []
    for w, ds in zip(weights, deps):
        finish.append(w + max((finish[d] for d in ds), default=0.0))
    return max(finish, default=0.0)
