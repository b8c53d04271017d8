"""A mix run drawn: per model, its worst-case latency against the mix's scale (what it says: analysis/mix.py)."""

from __future__ import annotations

import math

from ..analysis.mix import combinations, need_mix
from ..results.read import Run


def mix_figure(run: Run, log: bool = False):
    """Per model, mean max-latency against the scale (one colour per model, one line style per combination),
    its target dashed, congested scales marked x at the top, the largest scale meeting every target grey."""
    from .figures import _BATCH_COLOURS, _new

    points = need_mix(run)
    fig, ax = _new(f"{run.model_name}: {run.meta.policy} on {run.meta.workers}",
                   "worst-case latency per model as every rate is scaled" if not run.meta.vary else
                   f"worst-case latency per model as {run.meta.vary}'s rate is scaled")
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
    ax.set_xlabel("scale of the mix's rates" if not run.meta.vary else
                  f"scale of {run.meta.vary}'s rate")
    ax.set_ylabel("mean max-latency per batch (ms)")
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8, loc="upper left")
    return fig
