"""A mix's answer, from its points.csv only: per model, worst-case latency against the mix's scale, and the largest
scale at which every model meets its target (every lower scale measured meeting them too)."""

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
    return points


def _meets(row) -> bool:
    """Uncongested, and within its target if it has one."""
    if row["congested"] or not math.isfinite(row["mean_max_latency_ms"]):
        return False
    target = row["latency_target_ms"]
    return not math.isfinite(target) or row["mean_max_latency_ms"] <= target


def combinations(points: pd.DataFrame) -> list[dict]:
    """Per batch-size combination: the largest scale meeting every target from the lowest scale up, and what
    fails at the first scale that does not (model, why)."""
    out = []
    for label, rows in points.groupby("mix", sort=False):
        best, failure = None, None
        for scale, at in rows.sort_values("scale").groupby("scale", sort=True):
            missed = [r for _, r in at.iterrows() if not _meets(r)]
            if missed:
                failure = {"scale": float(scale), "models": [_why(r) for r in missed]}
                break
            best = {"scale": float(scale), "models": {
                r["model"]: {"rate_qps": float(r["rate_qps"]), "mean_max_latency_ms": float(r["mean_max_latency_ms"])}
                for _, r in at.iterrows()}}
        out.append({"mix": str(label), "largest_scale": best, "first_failure": failure})
    return out


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
        verdict.append(head + f"every model {goal} up to scale {best['scale']:g}: {rates}" + tail)
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


def mix_figure(run: Run, log: bool = False):
    """Per model, mean max-latency against the scale (one colour per model, one line style per combination),
    its target dashed, congested scales marked x at the top, the largest scale meeting every target grey."""
    from .figures import _BATCH_COLOURS, _new

    points = need_mix(run)
    fig, ax = _new(f"{run.model_name}: {run.meta.policy} on {run.meta.workers}",
                   "worst-case latency per model as every rate is scaled" if not run.meta.extra.get("vary") else
                   f"worst-case latency per model as {run.meta.extra['vary']}'s rate is scaled")
    styles = ["-", "--", ":", "-."]
    models = list(dict.fromkeys(points["model"]))
    top = points["mean_max_latency_ms"].max()
    top = top if math.isfinite(top) else 1.0
    for j, (label, rows) in enumerate(points.groupby("mix", sort=False)):
        for i, model in enumerate(models):
            mine = rows[rows.model == model].sort_values("scale")
            colour = _BATCH_COLOURS[i % len(_BATCH_COLOURS)]
            ok = mine[~mine.congested & mine.mean_max_latency_ms.notna()]
            name = model if points["mix"].nunique() == 1 else f"{model} ({label})"
            ax.plot(ok.scale, ok.mean_max_latency_ms, styles[j % len(styles)], marker="o", color=colour, label=name)
            jammed = mine[mine.congested]
            if len(jammed):
                ax.plot(jammed.scale, [top * (1.04 + 0.05 * i)] * len(jammed), "x", color=colour, markersize=9,
                        label=f"{name} congested")  # a row of x per model: none hides another's
            target = mine.latency_target_ms.dropna()
            if j == 0 and len(target):
                ax.axhline(float(target.iloc[0]), color=colour, linestyle=(0, (4, 3)), linewidth=1,
                           label=f"{model} target {float(target.iloc[0]):g} ms")
    for c in combinations(points)[:1]:
        if c["largest_scale"]:
            ax.axvline(c["largest_scale"]["scale"], color="grey", linewidth=1,
                       label=f"every target met up to scale {c['largest_scale']['scale']:g}")
    ax.set_xlabel("scale of the mix's rates" if not run.meta.extra.get("vary") else
                  f"scale of {run.meta.extra['vary']}'s rate")
    ax.set_ylabel("mean max-latency per batch (ms)")
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8, loc="upper left")
    return fig


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
