"""The figures, drawn from result files only (paper Fig. 2a, 2b, 3, 4, and a worker timeline).

Each function takes runs read by `results.read_run` and returns a matplotlib Figure; `save` writes it in
the format the file name asks for. Colours: one per batch size, the same in every figure; one per run in
comparisons.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..analysis import envelope as env  # noqa: E402
from ..analysis.verdict import every_point_failed, failed_sizes, never_congested  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..kinds import kind_of_worker  # noqa: E402
from ..results.read import Run, legend_labels  # noqa: E402
from ..results.runmeta import RunMeta  # noqa: E402
from ..results.schema import flags  # noqa: E402
from ..results.tasks import task_table  # noqa: E402
from . import backend  # noqa: F401 - Agg, before pyplot

RATE_LABEL = "injected throughput (queries/s)"
LATENCY_LABEL = "mean max-latency per batch (ms)"
_BATCH_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f"]
RUN_COLOURS = ["#000000", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
RUN_LINES = ["-", "--", "-.", ":"]  # past 8 runs the colours come round again: each round with a line of its own


def run_style(i: int) -> dict:
    """The i-th run's colour, line and marker: distinct for 32 runs (two runs in one colour could not be told
    apart, in the curves or the legend)."""
    turn = i // len(RUN_COLOURS)
    return {"color": RUN_COLOURS[i % len(RUN_COLOURS)], "linestyle": RUN_LINES[turn % len(RUN_LINES)],
            "marker": "osD^"[turn % 4]}


def batch_colour(n: int) -> str:
    """Powers of two (the usual grid) get the first colours in order; anything else a fixed other one."""
    if n > 0 and n & (n - 1) == 0:
        return _BATCH_COLOURS[int(math.log2(n)) % len(_BATCH_COLOURS)]
    return _BATCH_COLOURS[(n * 7 + 3) % len(_BATCH_COLOURS)]


def title_of(run: Run) -> str:
    meta = run.meta
    if meta.engine == "sim":
        return f"{run.model_name}{_split_words(meta)}, simulated on {meta.platform_name or 'a platform'}"
    machine = f"{meta.cpu}, {meta.cores if meta.cores is not None else '?'} cores" + (", GPU" if meta.gpu else "")
    return f"{run.model_name}{_split_words(meta)} on {machine}"


def _split_words(meta: RunMeta) -> str:
    return f" ({meta.plan_words()})" if meta.plan_words() else ""


def subtitle_of(run: Run) -> str:
    meta = run.meta
    bits = [f"system {meta.system}", f"workers {meta.workers or '?'}", f"policy {meta.policy or '?'}",
            f"engine {meta.engine}", f"{meta.batches if meta.batches is not None else '?'} batches per point"]
    if meta.arrival != "fixed":
        bits.append(f"arrival {meta.arrival}")
    return ", ".join(bits)


def _new(run_title: str, subtitle: str, wide: bool = False):
    import textwrap

    fig, ax = plt.subplots(figsize=(10 if wide else 8, 5.2), layout="constrained")
    fig.suptitle(textwrap.fill(run_title, 95 if wide else 75), fontsize=12)  # wrapped: a long title never clips
    ax.set_title(textwrap.fill(subtitle, 130 if wide else 105), fontsize=8.5, color="#444444")
    ax.grid(True, which="both", alpha=0.25)
    return fig, ax


def latency_axes(ax, log: bool) -> None:
    ax.set_xlabel(RATE_LABEL)
    ax.set_ylabel(LATENCY_LABEL)
    ax.set_xlim(left=0)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def need_usable(run: Run) -> pd.DataFrame:
    """The run's uncongested points, or one clear error (an empty figure or table helps nobody)."""
    if run.points.empty:
        raise UserError(f"run '{run.path}' has no points yet: its sweep wrote none (interrupted at once?); "
                        "continue it with --resume")
    ok = env.usable(run.points)
    if ok.empty and set(failed_sizes(run.points)) == set(run.points.batch_size.astype(int)):
        raise UserError(f"run '{run.path}' has no point to draw: every point failed (the model does not run at its "
                        "batch sizes on these workers; points.csv's errors say why): check it with 'staronnx profile "
                        "MODEL --batch N'")
    if ok.empty:
        lowest = run.points.rate_qps.min()
        raise UserError(f"run '{run.path}' has no uncongested point to draw (every point congested or failed): "
                        f"sweep lower rates than {lowest:g} q/s")
    return ok


def _mark_congestion(ax, run: Run, colour_of) -> None:
    """A dotted vertical line where each batch size was first found congested, named in the legend (labels on
    the lines collided where batch sizes congest at nearby rates); batch sizes congested at one rate share one."""
    by_rate: dict[float, list[int]] = {}
    for n, rate in env.first_congested(run.points).items():
        if rate is not None:
            by_rate.setdefault(rate, []).append(n)
    for rate, sizes in sorted(by_rate.items()):
        ax.axvline(rate, color=colour_of(sizes[0]) if len(sizes) == 1 else "#555555", linestyle=":", linewidth=1.2,
                   alpha=0.8, label=f"N = {', '.join(map(str, sizes))} congested from {rate:g} q/s")


def batches_figure(run: Run, log: bool = False):
    """Fig. 2a: mean max-latency against throughput, one curve per batch size, std as error bars."""
    ok = need_usable(run)
    fig, ax = _new(title_of(run), subtitle_of(run))
    for n, group in ok.groupby("batch_size"):
        group = group.sort_values("rate_qps")
        ax.errorbar(group.rate_qps, group.mean_max_latency_ms, yerr=group.std_max_latency_ms.fillna(0),
                    color=batch_colour(int(n)), marker="o", markersize=4, capsize=3, linewidth=1.5, label=f"N = {n}")
    _mark_congestion(ax, run, batch_colour)
    latency_axes(ax, log)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: "congested" in labels[i])  # the curves, then the lines
    ax.legend([handles[i] for i in order], [labels[i] for i in order], title="batch size (bars: std)",
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
    return fig


def envelope_figure(run: Run, log: bool = False):
    """Fig. 2b: at each rate the batch size of least latency (N written at each point), the per-N curves in
    grey behind, and the ideal (N-1)/rho + S(N) of the chosen N, dashed."""
    ok = need_usable(run)
    best = env.envelope(run.points)
    fig, ax = _new(title_of(run), subtitle_of(run))
    starts = []
    for n, group in ok.groupby("batch_size"):
        group = group.sort_values("rate_qps")
        ax.plot(group.rate_qps, group.mean_max_latency_ms, color="#bbbbbb", linewidth=1, marker=".", zorder=1)
        starts.append((int(n), float(group.rate_qps.iloc[0]), float(group.mean_max_latency_ms.iloc[0])))
    ax.plot(best.rate_qps, best.mean_max_latency_ms, color="black", linewidth=2, zorder=3, label="best N at each rate")
    span = max(float(best.rate_qps.max() - best.rate_qps.min()), 1e-9)
    last_x, last_n = None, None
    for _, row in best.iterrows():
        n = int(row.batch_size)
        ax.scatter(row.rate_qps, row.mean_max_latency_ms, color=batch_colour(n), s=36, zorder=4, edgecolor="black")
        if n != last_n or last_x is None or row.rate_qps - last_x > 0.06 * span:  # no labels on top of each other
            ax.annotate(f"{n}", (row.rate_qps, row.mean_max_latency_ms), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=8, color=batch_colour(n), fontweight="bold")
            last_x, last_n = row.rate_qps, n
    ideal = _ideal_along(run.points, best)
    if not ideal.empty:
        ax.plot(ideal.rate_qps, ideal.ideal_ms, color="#555555", linestyle="--", linewidth=1.2, zorder=2,
                label="ideal (N-1)/rho + S(N) of that N")
    top = env.system_rho_max(run.points)
    if top is not None:
        ax.axvline(top, color="black", linestyle=":", linewidth=1, label=_rho_words(run, top) + (
            " (never congested: saturation above)" if never_congested(run) else " (saturation)"))
    latency_axes(ax, log)
    _label_curve_starts(fig, ax, starts)
    ax.plot([], [], color="#bbbbbb", linewidth=1, label="each N (grey)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
    ax.text(1.01, 0.02, "numbers: the best N", transform=ax.transAxes, fontsize=8, color="#444444")
    return fig


def _label_curve_starts(fig, ax, starts: list[tuple[int, float, float]]) -> None:
    """'N=k' left of each grey curve's first point (curves are furthest apart at low rates, and the best-N
    numbers sit above the points, not beside them), pushed apart vertically so no two labels overlap."""
    gap = 7.5 * 1.4  # points: the label's font size and some air
    placed: list[float] = []
    left = ax.transAxes.transform((0, 0))[0]
    for n, x, y in sorted(starts, key=lambda s: s[2]):
        px, py = ax.transData.transform((x, y))
        points_y = py * 72 / fig.dpi
        shift = max(0.0, (placed[-1] + gap - points_y) if placed else 0.0)
        placed.append(points_y + shift)
        room = (px - left) * 72 / fig.dpi > 30  # points to the left of the first point
        ax.annotate(f"N={n}", (x, y), textcoords="offset points", xytext=(-6 if room else 6, shift if room else
                                                                          shift + 9),
                    ha="right" if room else "left", va="center", fontsize=7.5, color="#777777")


def _ideal_along(points: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """The ideal of the chosen N at each rate: points.csv's ideal_latency_ms (none beyond what the workers can
    serve, as in the tables), or (N-1)/rho + S(N) for runs written before that column."""
    rows = []
    recorded = "ideal_latency_ms" in points
    for _, row in best.iterrows():
        if recorded:
            hit = points[(points.batch_size == row.batch_size) & (points.rate_qps == row.rate_qps)].ideal_latency_ms
            value = pd.to_numeric(hit, errors="coerce").dropna()
            if not value.empty:
                rows.append({"rate_qps": row.rate_qps, "ideal_ms": float(value.iloc[0])})
            continue
        curve = env.ideal_curve(points, int(row.batch_size))
        match = curve[curve.rate_qps == row.rate_qps]
        if not match.empty:
            rows.append({"rate_qps": row.rate_qps, "ideal_ms": float(match.ideal_ms.iloc[0])})
    return pd.DataFrame(rows, columns=["rate_qps", "ideal_ms"])


def _rho_words(run: Run, top: float) -> str:
    """'rho_max 100 q/s', or 'rho_max >= 100 q/s' where no batch size congested at the top of the grid (a lower
    bound: the verdict says 'at least')."""
    return f"rho_max {'>= ' if never_congested(run) else ''}{top:g} q/s"


def compare_figure(runs: list[Run], labels: list[str] | None = None, log: bool = False, title: str | None = None):
    """Fig. 3 / Fig. 4: the envelopes of several runs on one figure, each rho_max marked (dotted, in the run's
    colour; grey where several runs share it). Only what is drawn is in the legend, below the axes, its labels
    wrapped so that a long one never squeezes the axes."""
    import textwrap

    labels = labels or legend_labels(runs)
    tops = [env.system_rho_max(run.points) for run in runs]
    skipped = [label for label, top in zip(labels, tops) if top is None]
    if len(skipped) == len(runs):
        raise UserError("none of the runs has an uncongested point to draw: sweep lower rates")
    subtitle = "best batch size at each rate; dotted: each run's rho_max" + (
        f"; not drawn (no uncongested point): {', '.join(skipped)}" if skipped else "")
    models = list(dict.fromkeys(r.model_name for r in runs))
    fig, ax = _new(title or (title_of(runs[0]) if len(models) == 1 else " vs ".join(models)), subtitle)
    for i, (run, label, top) in enumerate(zip(runs, labels, tops)):
        if top is None:
            continue
        style = run_style(i)
        best = env.envelope(run.points)
        ax.plot(best.rate_qps, best.mean_max_latency_ms, markersize=4, linewidth=1.8,
                label=textwrap.fill(f"{label}: {_rho_words(run, top)}", 60), **style)
        shared = sum(t == top for t in tops) > 1
        ax.axvline(top, color="#555555" if shared else style["color"], linestyle=":", linewidth=1.2)
    latency_axes(ax, log)
    drawn = [label for label, top in zip(labels, tops) if top is not None]
    columns = len(drawn) if sum(min(len(label), 60) + 25 for label in drawn) <= 130 else 1
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8.5, ncol=columns)
    return fig


def split_label(run: Run) -> str:
    """'whole model' or the plan's words (RunMeta.plan_words), with the run's folder."""
    return f"{run.meta.plan_words() or 'whole model'} ({run.path.name})"


def splits_figure(runs: list[Run], log: bool = False):
    models = {run.model for run in runs}
    if len(models) > 1:
        names = ", ".join(sorted({run.model_name for run in runs}))
        raise UserError(f"--kind splits compares splits of one model, but these runs measured different models "
                        f"({names}): use --kind compare")
    return compare_figure(runs, [split_label(r) for r in runs], log, title=f"{title_of(runs[0])}: splits")


def timeline_figure(run: Run, batch_size: int | None = None, rate: float | None = None):
    """Which worker ran which part when, for one point: to see overlap and idle time."""
    batches = run.batches
    n, rho = pick_point(run, batch_size, rate)
    mine = batches[(batches.batch_size == n) & (batches.rate_qps == rho)]
    tasks = task_table(mine)
    if tasks.empty:
        raise UserError(f"point N={n}, {rho:g} q/s of '{run.path}' ran no task: choose another with --batch-size "
                        "and --rate")
    workers = run_workers(run, tasks)
    fig, ax = _new(title_of(run), f"timeline of N = {n} at {rho:g} q/s: one bar per task, colour = part", wide=True)
    parts = sorted(tasks.part.unique())
    part_colours = {p: RUN_COLOURS[(p + 2) % len(RUN_COLOURS)] for p in parts}
    for y, worker in enumerate(workers):
        mine_w = tasks[tasks.worker == worker]
        for part in parts:
            sel = mine_w[mine_w.part == part]
            ax.broken_barh(list(zip(1000 * sel.start_s, 1000 * (sel.end_s - sel.start_s))), (y - 0.35, 0.6),
                           facecolors=part_colours[part], edgecolor="white", linewidth=0.3)
        copies = mine_w.dropna(subset=["transfer_start_s"])  # a GPU worker's input copies, under its tasks
        ax.broken_barh(list(zip(1000 * copies.transfer_start_s, 1000 * (copies.transfer_end_s -
                                                                         copies.transfer_start_s))),
                       (y + 0.28, 0.1), facecolors="#444444")
    releases = 1000 * mine.actual_release_s
    ax.vlines(releases, -0.6, len(workers) - 0.4, color="#999999", linewidth=0.5, linestyle="-", alpha=0.6)
    from matplotlib.patches import Patch

    handles = [Patch(color=part_colours[part], label=f"part {part}") for part in parts]
    warm = _warmup_end_ms(mine)
    if warm:  # the batches before the first measured one: run, not measured
        ax.axvspan(0, warm, color="#e8e8e8", zorder=0)
        handles.append(Patch(color="#e8e8e8", label="warm-up (not measured)"))
    if tasks.transfer_start_s.notna().any():
        handles.append(Patch(color="#444444", label="input copies (GPU)"))
    handles.append(ax.plot([], [], color="#999999", linewidth=0.8, label="batch release")[0])
    ax.set_yticks(range(len(workers)), workers)
    ax.set_xlabel("time since the point's start (ms)")
    ax.set_ylim(-0.6, len(workers) - 0.4)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
    return fig


def _warmup_end_ms(batches: pd.DataFrame) -> float | None:
    """Where a point's warm-up ends: the release of its first measured batch (None: no warm-up recorded)."""
    if "measured" not in batches:
        return None
    measured = flags(batches.measured)
    if measured.all() or not measured.any():
        return None
    return 1000 * float(batches[measured].actual_release_s.min())


def run_workers(run: Run, tasks: pd.DataFrame) -> list[str]:
    """Every worker of the run, those that ran no task of the point included: an idle worker is a finding (dmda
    kept it out), not one to hide as if it never started."""
    return sorted({str(w) for w in run.meta.worker_cores} | {str(w) for w in tasks.worker.unique()}, key=_worker_order)


def _worker_order(name: str) -> tuple[str, int]:
    """cuda0, cuda1, cpu0, cpu1, cpu10 in that order (GPUs first, numbers as numbers)."""
    kind = name.rstrip("0123456789")
    return ("0" if kind_of_worker(name).on_gpu else "1") + kind, int(name[len(kind):] or 0)


def pick_point(run: Run, batch_size: int | None, rate: float | None) -> tuple[int, float]:
    """The point asked for, or by default the highest uncongested rate of the smallest batch size."""
    points = run.points
    if batch_size is not None and rate is not None:
        reasons = points["reason"] if "reason" in points else pd.Series("", index=points.index)
        skipped = reasons.fillna("").astype(str).str.startswith("not run")  # written, never released
        ran = points[~skipped]
        hit = ran[(ran.batch_size == batch_size) & ((ran.rate_qps - rate).abs() < 1e-6)]
        if hit.empty:
            have = ", ".join(f"N={int(b)} {r:g}" for b, r in sorted(zip(ran.batch_size, ran.rate_qps)))
            was = points[skipped & (points.batch_size == batch_size) & ((points.rate_qps - rate).abs() < 1e-6)]
            why = f" ({reasons[was.index[0]]})" if not was.empty else ""
            raise UserError(f"run '{run.path}' ran no point N={batch_size} at {rate:g} q/s{why}; it ran: {have}")
        return int(batch_size), float(hit.rate_qps.iloc[0])
    ok = env.usable(points)
    if batch_size is not None:
        ok = ok[ok.batch_size == batch_size]
    if rate is not None:
        ok = ok[(ok.rate_qps - rate).abs() < 1e-6]
    if ok.empty and every_point_failed(points):
        raise UserError(f"run '{run.path}': every point failed (no batch ran; its errors column says why), so there "
                        "is nothing to trace: fix what failed and sweep again")
    if ok.empty:
        raise UserError(f"run '{run.path}' has no uncongested point matching that: give --batch-size and --rate "
                        "of a point in its points.csv")
    ok = ok.sort_values(["batch_size", "rate_qps"], ascending=[True, False])
    return int(ok.batch_size.iloc[0]), float(ok.rate_qps.iloc[0])


def save(fig, output: Path) -> Path:
    suffix = output.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf"):
        raise UserError(f"-o {output}: write a .png, .svg or .pdf file")
    import io

    from ..outputfile import write_bytes_atomic

    try:
        data = io.BytesIO()
        fig.savefig(data, format=suffix[1:], dpi=150 if suffix == ".png" else None)
    finally:
        plt.close(fig)
    # whole or not at all, and a link at -o is replaced, never written through (to the file it points at)
    write_bytes_atomic(output, data.getvalue(), "choose another -o")
    return output
