"""A fleet campaign's answer across machine kinds, from its runs' files only: per kind and model, rho_max and the
best batch size at each rate; in words, which kind serves each rate at the lowest worst-case latency and which
serves the most queries per node."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..results.read import Run, read_run
from . import envelope as env
from .verdict import best_latency_at, least_latency_at, ms, qps


@dataclass(frozen=True)
class FleetRun:
    sweep: str
    kind: str
    run: Run
    attempts: int = 1  # nodes it ran on: more than one where an attempt ended and the job resumed elsewhere
    lost: str = ""  # why the last attempt that did not finish ended
    finished: bool = True  # False: given up (its points are those measured before)

    @property
    def model(self) -> str:
        return self.run.model_name


def read_fleet(path: Path) -> list[FleetRun]:
    """The campaign's runs that have points (a job not begun has none), in the order of its state file."""
    try:
        state = json.loads((path / "fleet.json").read_text())
        keys = list(state["jobs"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"'{path / 'fleet.json'}' is not a fleet state file: give the -o of staronnx fleet") from None
    runs = []
    for key in keys:
        sweep, _, kind = key.partition("/")
        if (path / key / "points.csv").exists():
            job = state["jobs"][key] if isinstance(state["jobs"][key], dict) else {}
            done = job.get("status", "done") == "done"  # attempts counts the attempts that did not finish
            runs.append(FleetRun(sweep, kind, read_run(path / key), int(done) + int(job.get("attempts") or 0),
                                 str(job.get("why") or ""), done))
    if not runs:
        raise UserError(f"fleet '{path}' has no measured point yet: run the campaign (staronnx fleet)")
    return runs


def fleet_rows(runs: list[FleetRun]) -> list[dict]:
    """One row per (sweep, kind): its model, parts, rho_max and the batch size reaching it."""
    rows = []
    for f in runs:
        per_n = env.rho_max(f.run.points)
        top = max((v for v in per_n.values() if v is not None), default=None)
        best_n = next((n for n, v in per_n.items() if v == top), None) if top is not None else None
        shown = "none" if top is None else (">= " if _unbounded(f.run.points, top) else "") + f"{top:g}"
        rows.append({"sweep": f.sweep, "kind": f.kind, "model": f.model, "parts": int(f.run.meta.parts),
                     "workers": f.run.meta.workers, "rho_max q/s": shown,
                     "N at rho_max": best_n if best_n is not None else "",
                     "host": str((f.run.meta.extra.get("fleet") or {}).get("host", f.run.meta.host)),
                     "attempts": f.attempts})
    return rows


def _unbounded(points, top: float) -> bool:
    """Whether a batch size reaching `top` was congested at no rate above it: `top` is then where its grid ended."""
    bad = points[points["congested"].astype(bool)]
    return any(v == top and not ((bad.batch_size == n) & (bad.rate_qps > top)).any()
               for n, v in env.rho_max(points).items())


def _by_model(runs: list[FleetRun]) -> dict[str, list[FleetRun]]:
    """The runs of each model (a whole model and its splits are alternatives, compared), known by its sha256: two
    files both named model.onnx (as Hugging Face exports write them) are two models, each then named with its
    sweeps."""
    groups: dict[str, list[FleetRun]] = {}
    for f in runs:
        groups.setdefault(f.run.meta.model_sha256 or f.model, []).append(f)
    names = [mine[0].model for mine in groups.values()]
    return {(mine[0].model if names.count(mine[0].model) == 1 else
             f"{mine[0].model} ({', '.join(dict.fromkeys(f.sweep for f in mine))})"): mine
            for mine in sorted(groups.values(), key=lambda mine: (mine[0].model, mine[0].sweep))}


def fleet_answer(runs: list[FleetRun]) -> list[str]:
    """Per model: the kind that serves the most per node, then at each rate measured the kind (and sweep) with the
    lowest worst-case latency there."""
    sentences = [f"{f.sweep} on {f.kind} ran {f.attempts} times: an attempt ended ({f.lost}) and the job resumed "
                 "from the points already measured" for f in runs if f.attempts > 1 and f.finished]
    sentences += [f"{f.sweep} on {f.kind} did not finish ({f.attempts} attempts; the last: {f.lost}): its points are "
                  "those measured before; run the campaign again to finish it" for f in runs if not f.finished]
    for model, mine in _by_model(runs).items():
        served = [(top, f) for f in mine if (top := env.system_rho_max(f.run.points)) is not None]
        if not served:
            sentences.append(f"{model}: no kind served any rate without congestion.")
            continue
        top, most = max(served, key=lambda pair: pair[0])
        if _unbounded(most.run.points, top):  # the top of its grid, not where it saturates
            sentences.append(f"{model}: {most.kind} serves the most per node, at least {qps(top)} q/s ({most.sweep}; "
                             "never congested in its grid: give it higher rates, or rate = \"auto\", to find where "
                             "it saturates).")
        else:
            sentences.append(f"{model}: {most.kind} serves the most per node, {qps(top)} q/s ({most.sweep}).")
        rates = sorted({float(r) for f in mine for r in env.usable(f.run.points).rate_qps})
        for rate in rates:
            best = [(latency, f) for f in mine if (latency := best_latency_at(f.run.points, rate)) is not None]
            if best:  # an upper bound where a batch size bending there might do better: the winner still wins
                latency, f = min(best, key=lambda pair: pair[0])
                bound = "" if least_latency_at(f.run.points, rate) is not None else "at most "
                sentences.append(f"{model} at {qps(rate)} q/s: {f.kind} ({f.sweep}) {bound or 'at '}{ms(latency)} ms "
                                 "worst-case.")
    return sentences
