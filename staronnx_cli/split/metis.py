"""METIS through pymetis: the only module that imports it.

The DAG is given to METIS as an undirected graph (both directions stored), vertex weight = time in
integer microseconds (at least 1), edge weight = bytes in KiB (at least 1; METIS needs positive integers
and 32-bit sums). `tpwgts` asks for the target share of each part.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pymetis

from .graph import WeightedDag


def metis_parts(dag: WeightedDag, shares: list[float], seed: int) -> list[int]:
    n = len(dag.names)
    neighbours: list[dict[int, int]] = [dict() for _ in range(n)]
    for (u, v), size in dag.edges().items():
        kib = max(1, -(-size // 1024))
        neighbours[u][v] = neighbours[u].get(v, 0) + kib
        neighbours[v][u] = neighbours[v].get(u, 0) + kib
    xadj, adjncy, eweights = [0], [], []
    for v in range(n):
        for w, kib in sorted(neighbours[v].items()):
            adjncy.append(w)
            eweights.append(kib)
        xadj.append(len(adjncy))
    vweights = [max(1, round(w)) for w in dag.weights_us]
    total = sum(shares)
    options = pymetis.Options(seed=seed, ufactor=10, numbering=0)
    tpwgts = [s / total for s in shares]
    with _quiet_c_output():  # METIS prints its complaints ("***Cannot bisect ...") from C, to fd 1
        if hasattr(pymetis, "CSRAdjacency"):  # pymetis 2025+; xadj/adjncy keywords are deprecated there
            _, membership = pymetis.part_graph(len(shares), pymetis.CSRAdjacency(xadj, adjncy), vweights=vweights,
                                               eweights=eweights, tpwgts=tpwgts, options=options)
        else:
            _, membership = pymetis.part_graph(len(shares), xadj=xadj, adjncy=adjncy, vweights=vweights,
                                               eweights=eweights, tpwgts=tpwgts, options=options)
    return list(membership)


@contextlib.contextmanager
def _quiet_c_output():
    """Send what C code writes to stdout/stderr to /dev/null for the duration (Python's own streams flushed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
