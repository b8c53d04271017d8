"""After the search: the top candidates at each rate, their predicted saturation (simulated at rates above the
target), and, on this machine, short real sweeps of them at the target rates: predicted and measured side by
side."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..analysis.summary import finite_number
from ..analysis.verdict import IDLE_SLOWED, LOW_LOAD, ms, qps
from ..errors import UserError
from ..results.schema import unsettled
from .earlier import CONFIRMATIONS, set_aside_confirmations
from .search import SearchResult, SearchSettings, eligible, map_simulations
from .space import Candidate, Target

TOP = 3
HEADROOM = (1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)  # multiples of each target rate simulated


@dataclass
class Confirmed:
    candidate: Candidate
    rates: list[float]  # the target rates at which it is among the top
    predicted: dict[float, float | None] = field(default_factory=dict)  # rate -> latency (None: congested)
    measured: dict[float, float | None] = field(default_factory=dict)  # None: congested for real
    failed: dict[float, str] = field(default_factory=dict)  # rate -> why the real point measured nothing
    slowed: dict[float, tuple[float, bool]] = field(default_factory=dict)  # rate -> (its tasks' time over S(N),
    # whether the rate is low load): what the simulation, taking S(N) back to back, cannot foresee
    rho_max_predicted: float | None = None
    bound_qps: dict[float, float] = field(default_factory=dict)  # under --latency-bound, per target rate: up to
    # which rate of its headroom grid every simulated point stays within the bound (its headroom there)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (rate, predicted latency) uncongested


def candidate_of(row: dict, targets: list[Target]) -> Candidate:
    target = next(t for t in targets if t.key == row["target"])
    return Candidate(target, row["layout"], row["policy"], int(row["batch_size"]))


def top_candidates(result: SearchResult, targets: list[Target], bound_ms: float | None) -> list[Confirmed]:
    """The TOP uncongested candidates of least predicted latency at each rate; under a bound, every candidate
    within it (keep_most_headroom then keeps the TOP that stay within it up to the highest rates)."""
    chosen: dict[str, Confirmed] = {}
    for rate in sorted({r["rate_qps"] for r in result.rows}):
        ok = [r for r in result.rows if r["rate_qps"] == rate and r["status"] == "simulated"
              and eligible({"congested": r["predicted_congested"], "reason": r["reason"],
                            "mean_max_latency_ms": r["predicted_latency_ms"]})
              and (bound_ms is None or r["predicted_latency_ms"] <= bound_ms)]
        ranked = sorted(ok, key=lambda r: (r["predicted_latency_ms"], r["batch_size"]))
        for row in ranked if bound_ms is not None else ranked[:TOP]:
            c = candidate_of(row, targets)
            entry = chosen.setdefault(c.name, Confirmed(c, []))
            entry.rates.append(rate)
            entry.predicted[rate] = row["predicted_latency_ms"]
    return list(chosen.values())


def predict_saturation(entries: list[Confirmed], s: SearchSettings, pool=None,
                       on_count=lambda done, total: None) -> None:
    """Each top candidate simulated at multiples of its target rates (on the search's pool, if any): its predicted
    curve and rho_max (the highest of those rates that answers: a lower bound of the true one, within the step of
    HEADROOM) and, under a bound, per target rate, the rate up to which every point stays within it."""
    args = [(e.candidate, sorted({round(r * f, 3) for r in e.rates for f in HEADROOM}),
             s.out / "headroom" / e.candidate.name, (s.platforms or {}).get(e.candidate.layout), s.model_name,
             s.batches, s.warmup, (s.seed, s.input_data)) for e in entries]
    on_count(0, len(entries))
    for i, (e, points) in enumerate(zip(entries, map_simulations(args, pool))):
        answered = {float(p["rate_qps"]): float(p["mean_max_latency_ms"]) for p in points if eligible(p)}
        e.curve = sorted(answered.items())
        e.rho_max_predicted = max(answered, default=None)
        if s.latency_bound_ms is not None:
            e.bound_qps = {r: top for r in e.rates
                           if (top := _within_up_to(answered, r, s.latency_bound_ms)) is not None}
        on_count(i + 1, len(entries))


def _within_up_to(answered: dict[float, float], rate: float, bound_ms: float) -> float | None:
    """The highest of rate x HEADROOM before the first that does not answer within the bound (None: not even
    the rate itself): a point congested, not settled or above the bound ends the run."""
    top = None
    for r in (round(rate * f, 3) for f in HEADROOM):
        if answered.get(r, bound_ms + 1) > bound_ms:
            break
        top = r
    return top


def keep_most_headroom(entries: list[Confirmed]) -> list[Confirmed]:
    """Under a latency bound: at each rate, the TOP candidates that stay within it up to the highest rate (their
    headroom there), then by least predicted latency; the others are dropped (from that rate, or altogether)."""
    kept: dict[str, Confirmed] = {}
    for rate in sorted({r for e in entries for r in e.rates}):
        mine = sorted((e for e in entries if rate in e.rates),
                      key=lambda e: (-e.bound_qps.get(rate, 0.0), e.predicted[rate], e.candidate.batch_size))
        for e in mine[:TOP]:
            entry = kept.setdefault(e.candidate.name, Confirmed(e.candidate, [], rho_max_predicted=e.rho_max_predicted,
                                                                 bound_qps=e.bound_qps, curve=e.curve))
            entry.rates.append(rate)
            entry.predicted[rate] = e.predicted[rate]
    return list(kept.values())


def measure(entries: list[Confirmed], s: SearchSettings, batches: int, warmup: int, on_step,
            on_count=lambda done, total: None) -> list[str]:
    """Short real sweeps, one candidate after the other (alone on the machine), at its target rates; a candidate
    the machine refuses (memory, a model ONNX Runtime cannot run at N) is noted and the others still run, and
    other processes busy on the cores meanwhile are noted as a sweep warns of them."""
    from .. import hostload
    from ..results.read import read_run
    from ..sweep.runner import SweepSettings, run_sweep

    notes: list[str] = []
    warned: list[str] = []  # each confirmation's first warning of a busy machine
    for i, e in enumerate(entries):
        on_count(i, len(entries))
        c = e.candidate
        on_step(f"confirming for real: {c.setup} at {', '.join(qps(r) for r in e.rates)} q/s")
        out = s.out / "real" / c.name
        settings = SweepSettings(Path(c.target.path), out, workers=c.layout, policy=c.policy,
                                 batch_sizes=(c.batch_size,), rates=tuple(sorted(e.rates)), batches=batches,
                                 warmup=warmup, seed=s.seed, force=True, model_name=s.model_name,
                                 input_data=s.input_data,
                                 command=f"staronnx advise (confirmation): {c.setup}")
        try:
            points = run_sweep(settings)
        except UserError as exc:
            notes.append(f"not confirmed: {c.setup}: {exc}")
            e.failed.update({r: str(exc) for r in e.rates})
            continue
        warned += [w.replace("and sweep again", "and advise again") for w in
                   hostload.busy_warnings(read_run(out).meta.machine_load)[:1]]
        for p in points:
            _record(e, p)
    on_count(len(entries), len(entries))
    if warned:  # one note, not one per confirmation
        notes.append(f"while confirming for real ({len(warned)} of {len(entries)} confirmations): {warned[0]}")
    return notes


def measure_on_cluster(entries: list[Confirmed], s: SearchSettings, batches: int, warmup: int,
                       resources: dict[str, float], address: str | None, on_step) -> list[str]:
    """The real sweeps on a node of the platform's kind of a Ray cluster (its [ray] resources), one job each, as
    `staronnx fleet` runs them; a cluster without such a node is a note (the answer stands on its predictions)."""
    from ..fleet.run import FleetSettings, run_fleet
    from ..results.read import read_run

    folder = s.out / "real"
    set_aside_confirmations(folder)  # an earlier advise's: measured again, not continued (kept until done)
    folder.mkdir(parents=True, exist_ok=True)
    names = {e.candidate.name: e.candidate.name.replace("+", ".") for e in entries}  # a campaign name is a folder's
    kind = "platform"
    data = Path(s.input_data.source).resolve() if s.input_data.is_file else s.input_data.source
    sweeps = "".join(f'[[sweep]]\nname = "{names[e.candidate.name]}"\n'
                     f'target = "{Path(e.candidate.target.path).resolve()}"\nkinds = ["{kind}"]\n'
                     f'workers = "{e.candidate.layout}"\npolicy = "{e.candidate.policy}"\n'
                     f'batch = "{e.candidate.batch_size}"\nrate = "{_exact(e.rates)}"\n'
                     f'batches = {batches}\nwarmup = {warmup}\nseed = {s.seed}\n'
                     f'input_data = "{data}"\n\n'
                     for e in entries)
    table = ", ".join(f'"{k}" = {v:g}' for k, v in resources.items())
    campaign = folder / "campaign.toml"
    campaign.write_text(f'name = "{CONFIRMATIONS}"\n[kinds.{kind}]\nresources = {{ {table} }}\n\n{sweeps}')
    on_step(f"confirming {len(entries)} candidate(s) for real on a node with {resources}")
    try:
        run_fleet(FleetSettings(campaign, folder, address))
    except UserError as exc:
        return [f"not confirmed on the cluster: {exc}"]
    notes = []
    for e in entries:
        points = folder / names[e.candidate.name] / kind / "points.csv"
        if not points.exists():
            notes.append(f"not confirmed: {e.candidate.setup}: its job on the cluster measured nothing")
            continue
        try:
            rows = read_run(points.parent).points.to_dict("records")
        except UserError as exc:
            notes.append(f"not confirmed: {e.candidate.setup}: {exc}")
            continue
        for p in rows:
            _record(e, p)
    return notes


FAR_FROM_PREDICTED = 3.0  # a confirmation this many times its prediction: the machine, or the model, was off


def far_from_predicted(entries: list[Confirmed]) -> list[str]:
    """A note per confirmation measured far above its prediction: the answer rests on it, and either the machine
    was slowed while it ran or the simulation is off (said, not hidden in the table)."""
    notes = []
    for e in entries:
        for rate, measured in sorted(e.measured.items()):
            predicted = e.predicted.get(rate)
            if measured is not None and predicted and measured > FAR_FROM_PREDICTED * predicted:
                notes.append(f"{e.candidate.setup} at {qps(rate)} q/s measured {ms(measured)} ms where "
                             f"{ms(predicted)} was predicted ({measured / predicted:.1f} x): {_why_slower(e, rate)}")
    return notes


def _why_slower(e: Confirmed, rate: float) -> str:
    """Its tasks' own words where they ran well above S(N): at low load, cores idle between batches run the next
    one slower (a 3-part split of a tiny model: 0.34 ms per batch for 0.11 ms back to back), which the simulation,
    taking S(N) as measured back to back, does not foresee; else the machine or the simulation."""
    over, low = e.slowed.get(rate, (0.0, False))
    if over >= IDLE_SLOWED:
        where = ("at this low load cores idle between batches run the next one slower (the verdict of its run "
                 "says so)" if low else "workers busy at once, or other work, slowed them")
        return (f"its tasks ran {over:.1f} x their S(N) measured back to back, which the simulation takes as it is: "
                f"{where}")
    return "the machine was slowed while it ran, or the simulation is off; advise again on a quiet machine to tell"


def _record(e: Confirmed, point: dict) -> None:
    """A real point's answer: its latency; None where it did not hold the rate (congested, or its queue still
    filling when its batches ran out: a latency that is only a lower bound); failed where nothing was measured."""
    rate, latency = float(point["rate_qps"]), point.get("mean_max_latency_ms")
    if point["congested"] or unsettled(point.get("reason")):
        e.measured[rate] = None
    elif latency in ("", None) or latency != latency:
        e.failed[rate] = next((v for v in (point.get("errors"), point.get("reason")) if isinstance(v, str) and v),
                              "no batch measured")  # a read run's empty cells are NaN
    else:
        e.measured[rate] = float(latency)
        over, capacity = (finite_number(point.get(key)) or 0.0 for key in ("task_over_s", "capacity_qps"))
        if over > 0:
            e.slowed[rate] = (over, capacity > 0 and rate <= LOW_LOAD * capacity)


def _exact(rates: list[float]) -> str:
    """A cluster job's rates exactly as the search's (33.333333 written as 33.3333 was another point, never found
    back among the confirmations)."""
    return ",".join(repr(float(r)) for r in sorted(rates))
