"""A mix's answer, from its points.csv only (plots/mix.py draws it): per model, worst-case latency against the
mix's scale, and the largest scale at which every model meets its target (every lower scale measured meeting them
too); and which rows hold one mix point (trace)."""

from __future__ import annotations

import math

import pandas as pd

from ..errors import UserError
from ..results.read import Run

MIX_SUMMARY_VERSION = 1


def is_mix(run: Run) -> bool:
    return "mix" in run.points and run.points["mix"].notna().any()


def need_mix(run: Run) -> pd.DataFrame:
    if not is_mix(run):
        raise UserError(f"run '{run.path}' is not a mix (sweep --mix writes one): draw it with --kind envelope")
    points = run.points.copy()
    points["scale"] = pd.to_numeric(points["scale"], errors="coerce")
    points["latency_target_ms"] = pd.to_numeric(points["latency_target_ms"], errors="coerce")
    _check_mix_points(run, points)
    return points


def _check_mix_points(run: Run, points: pd.DataFrame) -> None:
    """A points.csv edited by hand: a model the mix does not name (report failed on a KeyError), a scale that is no
    positive number, or a point missing a model's row (the answer dropped that model without a word)."""
    fix = "the file was edited: sweep the mix again (or restore points.csv)"
    mix = run.meta.mix if isinstance(run.meta.mix, dict) else {}
    named = [str(m.get("name")) for m in mix.get("models", []) if isinstance(m, dict)]
    mixed = points[points["mix"].notna()]
    if named:
        foreign = sorted(set(mixed["model"].astype(str)) - set(named))
        if foreign:
            raise UserError(f"'{run.path}/points.csv' has rows of model '{foreign[0]}', which its run.json's mix does "
                            f"not name ({', '.join(named)}): {fix}")
    bad = ~(mixed["scale"] > 0) | ~mixed["scale"].map(math.isfinite)
    if bad.any():
        raise UserError(f"'{run.path}/points.csv': scale {mixed.loc[bad.idxmax(), 'scale']!r} is not a positive "
                        f"number: {fix}")
    if named:
        for (label, scale), rows in mixed.groupby(["mix", "scale"], sort=False):
            missing = sorted(set(named) - set(rows["model"].astype(str)))
            if missing:
                raise UserError(f"'{run.path}/points.csv': the point {label} at scale {scale:g} has no row of model "
                                f"'{missing[0]}': {fix}")


def meets_target(congested: bool, latency_ms: float | None, target_ms: float | None) -> bool:
    """A model's row in a mix point: uncongested, measured, and within its target if it has one (the sweep writes
    met_target by this, the summary reads rows by it)."""
    if congested or latency_ms is None or not math.isfinite(latency_ms):
        return False
    return target_ms is None or not math.isfinite(target_ms) or latency_ms <= target_ms


def _meets(row) -> bool:
    return meets_target(row["congested"], row["mean_max_latency_ms"], row["latency_target_ms"])


def combinations(points: pd.DataFrame) -> list[dict]:
    """Per batch-size combination: the largest scale meeting every target from the lowest scale up, and what
    fails at the first scale that does not (model, why). Scales below the first that meets them all, where every
    miss is a latency above its target (uncongested: a batch of N > 1 fills too slowly at a low rate), do not end
    the search: the answer then starts at `from_scale`, and `below` says what missed under it."""
    out = []
    for label, rows in points.groupby("mix", sort=False):
        best, failure, below, start = None, None, None, None
        for scale, at in rows.sort_values("scale").groupby("scale", sort=True):
            missed = [r for _, r in at.iterrows() if not _meets(r)]
            if missed and best is None and all(_too_slow(r) for r in missed):
                below = below or {"scale": float(scale), "models": [_why(r) for r in missed]}
                continue
            if missed:
                failure = {"scale": float(scale), "models": [_why(r) for r in missed]}
                break
            start = float(scale) if start is None else start
            best = {"scale": float(scale), "from_scale": start, "models": {
                r["model"]: {"rate_qps": float(r["rate_qps"]), "mean_max_latency_ms": float(r["mean_max_latency_ms"])}
                for _, r in at.iterrows()}}
        if best is None:  # nothing met: the first miss is the answer's reason, whatever kind
            failure, below = below or failure, None
        out.append({"mix": str(label), "largest_scale": best, "first_failure": failure, "below": below})
    return out


def _too_slow(row) -> bool:
    """Uncongested and measured, above its target: at a higher rate its batches fill sooner."""
    latency = row["mean_max_latency_ms"]
    return not row["congested"] and latency is not None and math.isfinite(latency) and not _meets(row)


def _why(row) -> dict:
    if not row["congested"] and not math.isfinite(row["mean_max_latency_ms"]):
        reason = row.get("errors") if isinstance(row.get("errors"), str) and row.get("errors") else row.get("reason")
        return {"model": row["model"], "why": f"failed ({reason})"}
    if row["congested"]:
        return {"model": row["model"], "why": f"congested ({row.get('reason', '')})"}
    latency, target = row["mean_max_latency_ms"], row["latency_target_ms"]
    return {"model": row["model"], "why": f"{latency:.3g} ms > target {target:g} ms"}


def mix_summary(run: Run) -> dict:
    points = need_mix(run)
    combos = combinations(points)
    targets = points["latency_target_ms"].notna().any()
    goal = "meets its target" if targets else "is uncongested"
    verdict = []
    for c in combos:
        best, failure = c["largest_scale"], c["first_failure"]
        head = f"{c['mix']} ({run.meta.policy}, {run.meta.workers}): "
        if best is None:
            verdict.append(head + f"no scale measured where every model {goal}; at scale {failure['scale']:g}: "
                           + "; ".join(f"{f['model']} {f['why']}" for f in failure["models"]))
            continue
        rates = ", ".join(f"{name} {m['rate_qps']:.4g} q/s ({m['mean_max_latency_ms']:.3g} ms)"
                          for name, m in best["models"].items())
        tail = f"; at scale {failure['scale']:g}: " + "; ".join(f"{f['model']} {f['why']}" for f in failure["models"]) \
            if failure else " (the largest scale measured: sweep higher --scale to find the limit)"
        below = c["below"]
        start = (f"from scale {best['from_scale']:g} " if below else "")
        under = (f"; below it, at scale {below['scale']:g}: " + "; ".join(f"{f['model']} {f['why']}" for f in
                                                                          below["models"])
                 + " (a batch fills too slowly at a low rate)") if below else ""
        verdict.append(head + f"every model {goal} {start}up to scale {best['scale']:g}: {rates}" + tail + under)
    answered = [c for c in combos if c["largest_scale"]]
    if len(combos) > 1 and answered:
        top = max(answered, key=lambda c: c["largest_scale"]["scale"])
        verdict.insert(0, f"Best batch sizes: {top['mix']}, every model {goal} up to scale "
                          f"{top['largest_scale']['scale']:g}")
    return {"summary_version": MIX_SUMMARY_VERSION, "kind": "mix", "run": str(run.path), "policy": run.meta.policy,
            "workers": run.meta.workers, "answered": bool(answered), "verdict": verdict, "combinations": combos}


def mix_table_rows(run: Run) -> list[dict]:
    """One row per (combination, scale): each model's worst-case latency (ms; 'congested'; '!' past its target)."""
    points = need_mix(run)
    several = points["mix"].nunique() > 1
    rows = []
    for (label, scale), at in points.groupby(["mix", "scale"], sort=False):
        row = {"batch sizes": label} if several else {}
        row["scale"] = f"{scale:g}"
        for _, r in at.iterrows():
            if r["congested"]:
                text = "congested"
            elif not math.isfinite(r["mean_max_latency_ms"]):
                text = "failed"
            else:
                text = f"{r['mean_max_latency_ms']:.2f}" + ("" if _meets(r) else " !")
            row[f"{r['model']} ms"] = text
        row["every target met"] = "yes" if all(_meets(r) for _, r in at.iterrows()) else "no"
        rows.append(row)
    return rows


def pick_mix_point(run: Run, mix: str | None, scale: float | None) -> tuple[str, float]:
    """A mix point: its batch-size combination ('cnn=2 mlp=1'; default: the only one) and scale (default: the
    highest at which no model congested, else the lowest)."""
    points = need_mix(run)
    combos = list(dict.fromkeys(str(m) for m in points["mix"].dropna()))
    if mix is None and len(combos) > 1:
        raise UserError(f"run '{run.path}' holds {len(combos)} batch-size combinations: give --mix, one of "
                        + ", ".join(f"'{c}'" for c in combos))
    mix = combos[0] if mix is None else mix
    if mix not in combos:
        raise UserError(f"run '{run.path}' has no combination '{mix}': give --mix, one of "
                        + ", ".join(f"'{c}'" for c in combos))
    mine = points[points["mix"] == mix]
    scales = sorted(mine.scale.dropna().unique())
    if scale is not None:
        hit = [s for s in scales if abs(s - scale) < 1e-9]
        if not hit:
            raise UserError(f"combination '{mix}' of run '{run.path}' has no scale {scale:g}; it has "
                            + ", ".join(f"{s:g}" for s in scales))
        return mix, float(hit[0])
    calm = [s for s in scales if not mine[mine.scale == s].congested.astype(bool).any()]
    return mix, float(max(calm) if calm else scales[0])


def mix_point_batches(run: Run, mix: str, scale: float) -> pd.DataFrame:
    """The batch rows of every model of one mix point."""
    batches = run.batches
    scales = pd.to_numeric(batches["scale"], errors="coerce") if "scale" in batches else pd.Series(dtype=float)
    at = batches[(scales - scale).abs() < 1e-9]
    if "mix" in batches:
        return at[at["mix"] == mix]
    if need_mix(run)["mix"].nunique() > 1:
        raise UserError(f"'{run.path / 'batches.csv'}' was written before it named each row's combination (no mix "
                        "column): its combinations cannot be told apart; sweep the mix again")
    return at
