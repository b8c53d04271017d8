"""`staronnx report`: the figures, the tables and each run's metadata in one Markdown file."""

from __future__ import annotations

from pathlib import Path

from ..results.read import Run
from . import figures, tables

META_KEYS = ["command", "system", "engine", "workers", "worker_cores", "policy", "arrival", "max_queue_delay_ms",
             "batches", "warmup", "seed", "cpu", "cores", "gpu", "host", "python", "onnxruntime", "staronnx",
             "target", "parts", "offload_fraction", "model_sha256", "plan_sha256", "start_time"]


def write_report(runs: list[Run], output: Path) -> list[Path]:
    """Write output (Markdown) and its figures in `<output stem>_files/`; returns every file written."""
    folder = output.with_name(output.stem + "_files")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines = [f"# staronnx report: {', '.join(sorted({r.model_name for r in runs}))}", ""]
    if len(runs) > 1:
        image = figures.save(figures.compare_figure(runs), folder / "compare.png")
        written.append(image)
        lines += ["## Comparison", "", f"![envelopes of every run]({folder.name}/{image.name})", ""]
        lines += ["| run | rho_max q/s |", "|---|---:|"]
        for run in runs:
            top = figures.env.system_rho_max(run.points)
            lines.append(f"| {run.label} | {'none' if top is None else f'{top:g}'} |")
        lines.append("")
    for i, run in enumerate(runs):
        lines += [f"## {run.label}", "", f"{figures.title_of(run)}; {figures.subtitle_of(run)}.", ""]
        if figures.env.usable(run.points).empty:
            lines += ["Every point of this run is congested or failed: no figure. Sweep lower rates.", ""]
        else:
            for kind, draw in (("envelope", figures.envelope_figure), ("batches", figures.batches_figure)):
                image = figures.save(draw(run), folder / f"{i}_{run.path.name}_{kind}.png")
                written.append(image)
                lines += [f"![{kind}]({folder.name}/{image.name})", ""]
        lines += ["### Best batch size at each rate", "", tables.markdown(tables.envelope_rows(run)),
                  "### Saturation per batch size", "", tables.markdown(tables.rho_rows(run)),
                  "### Run", "", "| key | value |", "|---|---|"]
        lines += [f"| {key} | `{run.meta.get(key)}` |" for key in META_KEYS if run.meta.get(key) not in (None, "")]
        lines.append("")
    output.write_text("\n".join(lines) + "\n")
    return [output, *written]
