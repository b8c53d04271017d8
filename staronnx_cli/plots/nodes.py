"""The profiler's figure, from costs files only: where a model's time goes, node by node and per op type, and,
given a CPU and a GPU costs file of one model, how far behind the CPU is on each node.

The nodes on which the CPU is least behind the GPU, late in the graph, are the natural ones to hand to the
CPU cores (the paper's split offloads the last 5-15 % of GPU time); the third panel shows both the ratio per
node in graph order and the share of GPU time that remains after each node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..kinds import key_on_gpu  # noqa: E402
from ..profile.costs import CLOCK_WORDS, main_timing, read_costs, read_meta, timing_of  # noqa: E402
from ..zoo.names import display_name  # noqa: E402
from . import backend  # noqa: F401 - Agg, before pyplot

GPU_COLOUR, CPU_COLOUR = "#2ca02c", "#1f77b4"
OP_COLOURS = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]  # op types: apart from the GPU/CPU colours


@dataclass
class NodeTimes:
    """One device's rows of one costs file."""

    path: Path
    device: str
    frame: pd.DataFrame  # every batch size, in graph order
    meta: dict

    @property
    def on_gpu(self) -> bool:
        return key_on_gpu(self.device)

    @property
    def model_name(self) -> str:
        model = self.meta.get("model")
        return display_name(Path(model)) if model else self.path.stem

    def at(self, batch: int) -> pd.DataFrame:
        return self.frame[self.frame.batch_size == batch].reset_index(drop=True)

    def clock(self, batch: int) -> str:
        return CLOCK_WORDS[main_timing(timing_of(self.at(batch)))]


def read_node_times(paths: list[Path]) -> list[NodeTimes]:
    tables = []
    for path in paths:
        if path.is_dir():
            raise UserError(f"'{path}' is a directory: --kind nodes draws costs files written by 'staronnx profile'")
        frame = read_costs(path)
        meta = read_meta(path)
        _check_against_sidecar(path, frame, meta)
        for device, rows in frame.groupby("device", sort=False):
            tables.append(NodeTimes(path, str(device), rows.assign(timing=timing_of(rows)), meta))
    if len(tables) > 2 or (len(tables) == 2 and {t.on_gpu for t in tables} != {True, False}):
        raise UserError("--kind nodes draws one costs file, or one CPU and one GPU costs file of the same model to "
                        f"compare them; got {', '.join(f'{t.path} ({t.device})' for t in tables)}")
    shas = {t.meta.get("model_sha256") for t in tables} - {None}
    if len(shas) > 1:
        raise UserError("these costs files were measured on different models ("
                        f"{', '.join(f'{t.path}: {t.model_name}' for t in tables)}): compare files of one model")
    return sorted(tables, key=lambda t: not t.on_gpu)  # the GPU's first


def _check_against_sidecar(path: Path, frame: pd.DataFrame, meta: dict) -> None:
    """A costs file whose rows no longer add up to what `profile` wrote beside it was cut or edited."""
    for batch, figures in (meta.get("batches") or {}).items():
        expected = (figures or {}).get("node_sum_us")
        rows = frame[(frame.batch_size == int(batch)) & (frame.device.astype(str) == str(meta.get("device")))]
        if expected is None or rows.empty:
            continue
        total = float(rows.mean_us.sum())
        if abs(total - expected) > max(1.0, 0.01 * expected):
            raise UserError(f"'{path}': its batch-{batch} rows sum to {total:.1f} us but profile recorded "
                            f"{expected:.1f} us beside it (the file is cut short or was edited): profile again")


def pick_batch(tables: list[NodeTimes], batch: int | None) -> tuple[int, str]:
    """The batch size to draw, and a note when files had batch sizes that are left out."""
    sizes = {t.path.name if len(tables) == 1 or t.path != tables[0].path else t.device:
             sorted(set(t.frame.batch_size)) for t in tables}
    listing = "; ".join(f"{name}: {', '.join(map(str, b))}" for name, b in sizes.items())
    common = sorted(set.intersection(*(set(b) for b in sizes.values())))
    if not common:
        raise UserError(f"these costs files share no batch size ({listing}): profile one of them again at a batch "
                        "size the other has")
    if batch is not None and batch not in common:
        raise UserError(f"--batch-size {batch}: the batch sizes of every file are {', '.join(map(str, common))} "
                        f"({listing})")
    chosen = common[-1] if batch is None else batch
    extra = len(tables) > 1 and any(set(b) != set(common) for b in sizes.values())
    return chosen, (f"batch {chosen}: the largest batch size both files have ({listing})" if extra and batch is None
                    else "")


def launch_time_note(tables: list[NodeTimes], batch: int) -> str:
    """One line when a GPU file holds launch times: its node times are not the GPU's work."""
    gpu = [t for t in tables if t.on_gpu and "launch" in t.clock(batch)]
    if not gpu:
        return ""
    return (f"{gpu[0].path} holds host launch times of {gpu[0].device}, not GPU time (profiled without CUPTI): "
            "its node times and any CPU/GPU ratio are launch overhead; profile with cupti-python installed")


def ratio_table(gpu: pd.DataFrame, cpu: pd.DataFrame) -> pd.DataFrame:
    """Per node, in graph order: GPU and CPU time, CPU/GPU ratio and the GPU time share left after the node."""
    joined = gpu[["node", "op_type", "mean_us"]].merge(cpu[["node", "mean_us"]], on="node", suffixes=("_gpu", "_cpu"))
    total = joined.mean_us_gpu.sum() or 1.0
    joined["gpu_share"] = joined.mean_us_gpu / total
    joined["gpu_after"] = 1.0 - joined.gpu_share.cumsum()
    timed = (joined.mean_us_gpu > 0) & (joined.mean_us_cpu > 0)
    joined["cpu_over_gpu"] = np.where(timed, joined.mean_us_cpu / joined.mean_us_gpu.where(timed, 1.0), np.nan)
    return joined


def node_rows_for_table(tables: list[NodeTimes], batch: int, top: int) -> list[dict]:
    """One costs file: its top nodes. A GPU and a CPU file: the GPU-heavy nodes on which the CPU is least behind."""
    rows = tables[0].at(batch)
    total = rows.mean_us.sum() or 1.0
    if len(tables) == 1:
        return [{"node": r.node, "op": r.op_type, "mean us": f"{r.mean_us:.1f}", "std us": f"{r.std_us:.1f}",
                 "share": f"{100 * r.mean_us / total:.1f} %"} for r in rows.nlargest(top, "mean_us").itertuples()]
    ratios = ratio_table(rows, tables[1].at(batch)).dropna(subset=["cpu_over_gpu"])
    ratios = ratios[ratios.gpu_share >= 0.005].nsmallest(top, "cpu_over_gpu")
    return [{"node": r.node, "op": r.op_type, f"{tables[0].device} us": f"{r.mean_us_gpu:.1f}",
             f"{tables[1].device} us": f"{r.mean_us_cpu:.1f}", "cpu/gpu": f"{r.cpu_over_gpu:.1f}",
             "GPU time after": f"{100 * r.gpu_after:.1f} %"} for r in ratios.itertuples()]


def nodes_figure(tables: list[NodeTimes], batch: int, top: int = 15):
    first = tables[0]
    rows = first.at(batch)
    total = rows.mean_us.sum() or 1.0
    panels = 3 if len(tables) == 2 else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 6.2), layout="constrained")
    fig.suptitle(f"{first.model_name}, batch {batch}: where the time goes", fontsize=13)
    _top_nodes(axes[0], rows, total, top, f"top {top} nodes on {first.device}: {first.clock(batch)}")
    _op_types(axes[1], [(t, t.at(batch)) for t in tables])
    if len(tables) == 2:
        _ratios(axes[2], ratio_table(rows, tables[1].at(batch)), tables[1].device, first.device)
    return fig


def _top_nodes(ax, rows: pd.DataFrame, total: float, top: int, title: str) -> None:
    best = rows.nlargest(top, "mean_us").iloc[::-1]
    y = np.arange(len(best))
    ax.barh(y, best.mean_us, xerr=best.std_us, color="#555555", error_kw={"elinewidth": 0.7, "ecolor": "#999999"})
    ax.set_yticks(y, [f"{n} ({op})" for n, op in zip(best.node, best.op_type)], fontsize=8)
    for yi, us, std in zip(y, best.mean_us, best.std_us):
        ax.text(us + std, yi, f" {100 * us / total:.1f} %", va="center", fontsize=7.5)  # past the error bar
    ax.set_xlabel("mean time per run (us), error bar: std over runs")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.18)


def _op_types(ax, tables) -> None:
    ops = pd.concat([rows.groupby("op_type").mean_us.sum().rename(t.device) for t, rows in tables], axis=1).fillna(0)
    ops = ops.sort_values(ops.columns[0])
    shares = 100 * ops / ops.sum().replace(0, 1)
    height = 0.8 / len(ops.columns)
    for i, device in enumerate(ops.columns):
        colour = GPU_COLOUR if key_on_gpu(device) else CPU_COLOUR
        y = np.arange(len(ops)) + i * height
        ax.barh(y, shares[device], height, color=colour, label=f"{device}: {ops[device].sum() / 1000:.3f} ms per run")
        for yi, share in zip(y, shares[device]):
            ax.text(share, yi, f" {share:.1f} %" if share >= 0.05 else " <0.1 %", va="center", fontsize=6.5)
    ax.set_yticks(np.arange(len(ops)) + height * (len(ops.columns) - 1) / 2, ops.index, fontsize=8)
    ax.set_xlabel("share of the node time sum (%)")
    ax.set_title("time per op type", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15)


def _ratios(ax, table: pd.DataFrame, cpu: str, gpu: str) -> None:
    timed = table.dropna(subset=["cpu_over_gpu"])
    by_op = timed.groupby("op_type").gpu_share.sum().sort_values(ascending=False)
    shown = list(by_op.index[:len(OP_COLOURS)])
    for op in shown + ["other"]:
        sel = timed[timed.op_type == op] if op != "other" else timed[~timed.op_type.isin(shown)]
        if not sel.empty:
            ax.scatter(sel.index, sel.cpu_over_gpu, s=8 + 600 * sel.gpu_share, alpha=0.7, linewidths=0,
                       color=OP_COLOURS[shown.index(op)] if op != "other" else "#999999", label=op)
    ax.set_yscale("log")
    ax.set_xlabel("node, in graph order (dot size: its share of GPU time)")
    ax.set_ylabel(f"{cpu} time / {gpu} time")
    ax.set_title("how far behind the CPU is, node by node", fontsize=10)
    legend = ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(shown) + 1,
                       frameon=False)
    for handle in legend.legend_handles:
        handle.set_sizes([30])
    after = ax.twinx()
    after.plot(table.index, 100 * table.gpu_after, color=GPU_COLOUR, linewidth=1.2)
    after.set_ylim(0, 100)
    after.set_ylabel("GPU time left after this node (%)", color=GPU_COLOUR)
    after.tick_params(axis="y", colors=GPU_COLOUR)
    for share in (5, 10, 15):  # marks on the right axis only: they are shares of GPU time, not ratios
        after.axhline(share, xmin=0.93, xmax=1.0, color=GPU_COLOUR, linewidth=1.0)
        after.text(0.92, share, f"{share} %", transform=after.get_yaxis_transform(), ha="right", va="center",
                   fontsize=7, color=GPU_COLOUR)
