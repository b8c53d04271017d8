"""advice.png from an advice directory's curves.csv: the top candidates' predicted curves (dashed) and their
measured points (solid; x where congested for real). Drawn by `advise` as it ends and again by `staronnx plot
ADVICE_DIR` (with --log), from the file only."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import UserError, first_line
from ..inputfile import checked_input

CURVES = "curves.csv"
CURVE_COLUMNS = ("model", "candidate", "setup", "rate_qps", "what", "latency_ms")
WHATS = ("predicted", "measured", "congested")  # simulated uncongested; measured; congested for real (its row holds
# the latency predicted there; drawn as an x above the plot, a row per candidate)


def is_advice(path: Path) -> bool:
    """A directory `advise -o` wrote (its advice.md)."""
    return path.is_dir() and (path / "advice.md").exists()


def read_curves(directory: Path) -> pd.DataFrame:
    """curves.csv, every row checked: one line naming the row and the fix where one is not what advise writes."""
    path = directory / CURVES
    if not path.exists() and not path.is_symlink():
        raise UserError(f"advice directory '{directory}' has no {CURVES} (an advise older than this staronnx, or "
                        "removed): run advise again to draw it")
    try:
        frame = pd.read_csv(checked_input(path, "curves file", "run advise again"), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"'{path}' is not a readable CSV ({first_line(exc)}): run advise again") from None
    missing = [c for c in CURVE_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"'{path}' lacks the column {missing[0]!r} (edited?): run advise again")
    for index, row in frame.iterrows():
        rate, latency = pd.to_numeric(row.rate_qps, errors="coerce"), pd.to_numeric(row.latency_ms, errors="coerce")
        if row.what not in WHATS or not (math.isfinite(rate) and rate > 0) or not (math.isfinite(latency)
                                                                                   and latency >= 0):
            raise UserError(f"'{path}' line {int(str(index)) + 2}: what={row.what!r}, rate_qps={row.rate_qps!r}, "
                            f"latency_ms={row.latency_ms!r}: {', '.join(WHATS)} at a positive rate and a latency of "
                            "0 or more (edited?): run advise again")
    return frame.astype({"rate_qps": float, "latency_ms": float, "setup": str, "candidate": str, "model": str})


def advice_figure(curves: pd.DataFrame, log: bool = False):
    """The figure of read_curves' rows (None when no candidate was drawn)."""
    import matplotlib.pyplot as plt

    from .figures import RUN_COLOURS, latency_axes

    setups = list(dict.fromkeys(curves.setup[curves.what == "predicted"]))
    if not setups:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.2), layout="constrained")
    fig.suptitle(f"{curves.model.iloc[0]}: the top candidates of advise", fontsize=12)
    rows = (curves.what == "congested").any() * len(setups)  # the rows of x's above the plot, below the title
    ax.set_title("dashed: predicted (simulated); solid: measured on this machine; x above the plot: congested "
                 "when measured", fontsize=8.5, color="#444444", pad=6 + 12 * rows)
    gap = 4.0 * max(len(setups) - 1, 1)  # each curve's dashes in the others' gaps: equal predictions all show
    for i, setup in enumerate(setups):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        mine = curves[curves.setup == setup].sort_values("rate_qps")
        predicted, real, jammed = (mine[mine.what == what] for what in WHATS)
        ax.plot(predicted.rate_qps, predicted.latency_ms, linestyle=(4.0 * i, (4.0, gap)), color=colour,
                linewidth=1.4)
        ax.plot([], [], linestyle="-", marker="o", color=colour, linewidth=2, label=setup)  # its swatch
        if not real.empty:
            ax.plot(real.rate_qps, real.latency_ms, linestyle="-", marker="o", color=colour, linewidth=2)
        if not jammed.empty:  # congested for real: no latency to draw, so an x above the plot at its rate (at the
            # latency predicted there it read as a good measured point), each candidate's in a row of its own
            ax.plot(jammed.rate_qps, [1.03 + 0.04 * i] * len(jammed), linestyle="none", marker="x", markersize=8,
                    markeredgewidth=1.6, color=colour, transform=ax.get_xaxis_transform(), clip_on=False)
    latency_axes(ax, log)
    ax.grid(True, alpha=0.25)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncol=1)
    return fig
