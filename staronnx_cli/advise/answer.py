"""The advice written down: advice.md (its first lines the recommendation, its expected latency and headroom to
saturation), candidates.csv (every candidate at every rate, simulated or pruned and why), advice.png (the top
candidates: predicted dashed, measured solid, drawn from curves.csv)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..analysis.verdict import ms, qps
from ..outputfile import write_text_atomic
from .confirm import Confirmed
from .search import SearchResult
from .space import workers_in


def recommendations(result: SearchResult, entries: list[Confirmed], bound_ms: float | None) -> list[dict]:
    """Per target rate: the chosen candidate, its predicted and measured latency, predicted rho_max, and why
    there is none where there is none. Chosen: the least measured latency among the confirmed, else the least
    predicted; under a bound, the most headroom within it (among those measured within it, else predicted), and
    where every one was measured above it, the least measured ("by" says which)."""
    out = []
    for rate in sorted({r["rate_qps"] for r in result.rows}):
        mine = [e for e in entries if rate in e.rates]
        measured = [e for e in mine if e.measured.get(rate) is not None]

        def got(e: Confirmed, rate=rate) -> float:
            value = e.measured.get(rate)
            return math.inf if value is None else value

        within = [e for e in measured if bound_ms is None or got(e) <= bound_ms]
        by = "headroom" if bound_ms is not None else "latency"
        if within:
            pick = min(within, key=lambda e: (less_headroom(e, rate, bound_ms), *tied(got(e), e)))
        elif measured:  # every one measured above the bound: the least, said to be above it
            pick, by = min(measured, key=lambda e: tied(got(e), e)), "latency"
        elif mine:
            pick = min(mine, key=lambda e: (less_headroom(e, rate, bound_ms), *tied(e.predicted[rate], e)))
        else:
            out.append({"rate_qps": rate, "setup": None, "why": _none_why(result, rate, bound_ms)})
            continue
        out.append({"rate_qps": rate, "setup": pick.candidate.setup, "candidate": pick.candidate,
                    "predicted_ms": pick.predicted.get(rate), "measured_ms": pick.measured.get(rate),
                    "rho_max_predicted": pick.rho_max_predicted, "bound_qps": pick.bound_qps.get(rate), "by": by,
                    "confirmed": bool(measured),
                    "congested_for_real": not measured and any(rate in e.measured for e in mine),
                    "over_bound": bool(bound_ms is not None and measured and got(pick) > bound_ms),
                    "bound_ms": bound_ms,
                    "headroom_over_qps": None if bound_ms is not None else won_on_headroom(
                        pick, within or measured or mine, got if measured else lambda e, r=rate: e.predicted[r])})
    return out


def won_on_headroom(pick: Confirmed, pool: list[Confirmed], latency) -> float | None:
    """Of the others whose latency printed as the pick's, the most headroom below the pick's: those it beat on
    headroom (why says so, with both figures); None where it beat none that way."""
    shown, mine = tied(latency(pick), pick)[0], pick.rho_max_predicted or 0.0
    beaten = [e.rho_max_predicted or 0.0 for e in pool
              if e is not pick and tied(latency(e), e)[0] == shown and (e.rho_max_predicted or 0.0) < mine]
    return max(beaten, default=None)


def less_headroom(e: Confirmed, rate: float, bound_ms: float | None) -> float:
    """Under a bound, minus the rate up to which it stays within it at `rate` (sorts the most headroom first)."""
    return -e.bound_qps.get(rate, 0.0) if bound_ms is not None else 0.0


def tied(latency_ms: float | None, e: Confirmed) -> tuple:
    """Least latency as printed first; among latencies printed alike, the most predicted headroom (the GPU beside 15
    cores at the GPU alone's 2.09 ms saturates at 600 q/s, the GPU alone at 440: 1.1 x a 400 q/s rate), then the
    simpler setup."""
    shown = float(ms(latency_ms)) if latency_ms is not None and math.isfinite(latency_ms) else math.inf
    return shown, -(e.rho_max_predicted or 0.0), *simpler(e)


def simpler(e: Confirmed) -> tuple:
    """A tie goes to the smaller batch, then to fewer workers."""
    return e.candidate.batch_size, workers_in(e.candidate.layout)


def _none_why(result: SearchResult, rate: float, bound_ms: float | None) -> str:
    """Why no candidate answers at `rate`, from what happened to its rows (the most frequent fate first)."""
    mine = [r for r in result.rows if r["rate_qps"] == rate]
    capacity = max((r["capacity_bound_qps"] or 0 for r in mine), default=0)
    served = [r for r in mine if r["predicted_latency_ms"] is not None and not r["predicted_congested"]]
    if served and bound_ms is not None:
        least = min(r["predicted_latency_ms"] for r in served)
        return f"no candidate meets {bound_ms:g} ms at {qps(rate)} q/s (the least predicted: {ms(least)} ms)"
    fates = {"formation": "formation", "no task times": "times", "capacity": "capacity", "beyond every": "capacity",
             "lower bound": "bound"}
    counts: dict[str, int] = {}
    for r in mine:
        fate = "congested" if r["status"] == "simulated" else next(
            (v for k, v in fates.items() if k in r["status"]), "other")
        counts[fate] = counts.get(fate, 0) + 1
    if counts.get("times", 0) == len(mine):
        return (f"no candidate could be judged at {qps(rate)} q/s: no task times (calibration failed, see the notes, "
                "or the platform lacks them)")
    over = counts.get("formation", 0) + counts.get("bound", 0)
    if bound_ms is not None and over and over + counts.get("capacity", 0) == len(mine):
        smallest = min(r["batch_size"] for r in mine) if mine else 1
        fix = "try smaller --batch sizes" if smallest > 1 else \
            "no batch size or layout here is faster than that"
        keep_up = "" if over == len(mine) else " of those that could keep up"
        return (f"no candidate meets {bound_ms:g} ms at {qps(rate)} q/s: for every one{keep_up}, even the "
                f"formation time and the least critical path exceed it ({fix})")
    if capacity == 0:
        return f"no candidate was searched at {qps(rate)} q/s (see the notes: --budget-s, --batch)"
    return (f"no candidate keeps up with {qps(rate)} q/s: every one congests (the highest capacity of any candidate is "
            f"{qps(capacity)} q/s, an upper bound)")


def headline(rec: dict) -> str:
    if rec["setup"] is None:
        return f"At {qps(rec['rate_qps'])} q/s: {rec['why']}."
    if rec["confirmed"]:
        latency = f"{ms(rec['measured_ms'])} ms measured ({ms(rec['predicted_ms'])} ms predicted)"
        if rec.get("over_bound"):
            latency += f", above the {rec['bound_ms']:g} ms bound on this machine"
    elif rec["congested_for_real"]:
        latency = (f"{ms(rec['predicted_ms'])} ms predicted, but every top candidate congested when measured on "
                   "this machine (the simulation is optimistic here)")
    else:
        latency = f"{ms(rec['predicted_ms'])} ms predicted (not confirmed for real)"
    top = rec["rho_max_predicted"]
    headroom = (f"; it saturates at about {qps(top)} q/s or beyond ({top / rec['rate_qps']:.2g} x this rate, "
                "simulated)" if top else "")
    if rec.get("bound_qps") and not rec.get("over_bound") and not rec.get("congested_for_real"):  # not beside a
        # measured miss (above the bound, or congested): the simulated rate says nothing then
        headroom += f"; within the {rec['bound_ms']:g} ms bound up to about {qps(rec['bound_qps'])} q/s (simulated)"
    return f"At {qps(rec['rate_qps'])} q/s: {rec['setup']}: worst-case latency {latency}{headroom}."


def write_candidates(result: SearchResult, path: Path) -> None:
    write_text_atomic(path, pd.DataFrame(result.rows).to_csv(index=False))


def write_markdown(path: Path, model: str, recs: list[dict], result: SearchResult, entries: list[Confirmed],
                   figure: Path | None, command: str, reasons: Sequence[str] = ()) -> None:
    """`reasons`: the lines of the section that says why (reasons.markdown_lines)."""
    lines = [f"# Advice for {model}", ""] + [f"**{headline(r)}**" + "  " for r in recs] + [""]
    why = ", ".join(f"{v} by {k}" for k, v in result.pruned.items() if v)
    lines += [f"Search: {result.simulated} (candidate, rate) points simulated, {sum(result.pruned.values())} pruned "
              f"({why or 'none'}) in {result.seconds:.1f} s.", ""]
    lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    from ..plots.tables import markdown

    lines += list(reasons)
    lines += ["## The top candidates, predicted and measured", "", markdown(top_rows(entries)),
              "Measured: congested means the real sweep found the queue growing at that rate.", ""]
    if figure is not None:
        lines += [f"![the top candidates]({figure.name})", ""]
    lines += ["Every candidate, with why it was pruned or what it predicted: `candidates.csv`; the simulated runs: "
              "`sim/`, `headroom/`; the real confirmations: `real/`.", "", f"Command: `{command}`", ""]
    write_text_atomic(path, "\n".join(lines))


def top_rows(entries: list[Confirmed]) -> list[dict]:
    """The top candidates at each rate, predicted beside measured (the table printed and in advice.md)."""
    rows = []
    for e in sorted(entries, key=lambda e: (min(e.rates), min((v for v in e.predicted.values() if v is not None),
                                                               default=math.inf))):
        for rate in e.rates:
            measured = ("failed" if rate in e.failed else
                        _ms(e.measured[rate]) if rate in e.measured else "not run")
            c = e.candidate  # the setup in short columns: one long cell folded over 5-6 lines on 80 columns
            rows.append({"rate q/s": qps(rate), "runs": c.what, "workers": c.layout, "policy": c.policy,
                         "N": str(c.batch_size),
                         "predicted ms": _ms(e.predicted.get(rate)), "measured ms": measured,
                         "predicted rho_max q/s": "" if e.rho_max_predicted is None else qps(e.rho_max_predicted)})
    return sorted(rows, key=lambda r: float(r["rate q/s"]))


def _ms(value) -> str:
    return "congested" if value is None else ms(value)


def write_curves(entries: list[Confirmed], model: str, path: Path) -> None:
    """curves.csv: each top candidate's predicted curve (its headroom simulations, uncongested), its measured
    points and where it was congested for real (at the latency predicted there): what advice.png draws."""
    from ..plots.advice import CURVE_COLUMNS

    rows: list[tuple] = []
    for e in entries:
        if not e.curve:
            continue
        c = e.candidate
        rows += [(model, c.name, c.setup, rate, "predicted", latency) for rate, latency in e.curve]
        for rate, latency in sorted(e.measured.items()):
            if latency is not None:
                rows.append((model, c.name, c.setup, rate, "measured", latency))
            elif e.predicted.get(rate):
                rows.append((model, c.name, c.setup, rate, "congested", e.predicted[rate]))
    write_text_atomic(path, pd.DataFrame(rows, columns=list(CURVE_COLUMNS)).to_csv(index=False))


def draw(directory: Path) -> Path | None:
    """advice.png from the directory's curves.csv (None when no candidate has a curve)."""
    from ..plots.advice import advice_figure, read_curves
    from ..plots.figures import save

    figure = advice_figure(read_curves(directory))
    return None if figure is None else save(figure, directory / "advice.png")
