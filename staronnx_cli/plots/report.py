"""`staronnx report`: the figures, the tables and each run's metadata in one Markdown file."""

from __future__ import annotations

from pathlib import Path

from ..analysis.mix import is_mix, mix_summary, mix_table_rows
from ..analysis.noise import noise_warnings
from ..analysis.slo import Slo, slo_answer, slo_sentence
from ..analysis.verdict import top_rate, verdict
from ..errors import UserError
from ..outputfile import write_text_atomic
from ..results.read import Run, legend_labels
from . import figures, tables
from .mix import mix_figure

META_KEYS = ["command", "system", "engine", "workers", "worker_cores", "policy", "arrival", "max_queue_delay_ms",
             "batches", "warmup", "seed", "input_data", "cpu", "cores", "gpu", "host", "python", "onnxruntime",
             "staronnx", "target", "parts", "offload_fraction", "model_sha256", "plan_sha256", "start_time"]

COLUMNS = """<details><summary>What the columns mean</summary>

- **mean max-latency ms**: the worst case the best batch size minimises. Each batch's longest query latency
  (its first query's: waiting for the batch to fill, then for a worker, then the service), averaged over the
  measured batches of the point. **std ms**: its standard deviation across those batches. **fill + wait + run
  ms**: where it went, adding up to it: filling the batch (its first query's arrival to its release), waiting
  (to its first task's start: workers busy, a late release), running (its tasks; between a split's parts, the
  hand-overs and any wait for a worker). **p99 ms**: the 99th percentile of every query's latency (from its own
  arrival).
- **ideal ms**: (N - 1) / rate + S(N), the latency with no queueing: batch formation plus the service time of
  the fastest worker alone. **measured/ideal**: 1.0 is ideal; below 0.9 the ideal's S(N) came from a slow spell.
- **rho_max q/s**: the highest rate a batch size sustains without a growing queue (congestion: a rising latency
  trend or a backlog of unfinished batches). **first congested q/s**: the lowest rate found congested.
- **S(N) ms (fastest)**: one batch of N through the whole model on the fastest worker alone (median of 10 runs).
  **capacity q/s**: N x the sum over workers of 1 / S_w(N), what the workers could serve with perfect scheduling.
  Both are measured alone before the points: where the machine's speed varies, rho_max can lie above the
  capacity by the grid's 3 % resolution (a warning says when it lies further above).
</details>"""


def write_report(runs: list[Run], output: Path, preface: list[str] | None = None, slo: Slo | None = None
                 ) -> list[Path]:
    """Write output (Markdown) and its figures in `<output stem>_files/`; returns every file written. `preface`:
    lines after the title (a fleet's answer across machine kinds); `slo`: each run's answer to it, first."""
    folder = output.with_name(output.stem + "_files")
    mixes = [run for run in runs if is_mix(run)]
    if mixes and len(mixes) < len(runs):
        raise UserError(f"'{mixes[0].path}' is a mix run and '{next(r for r in runs if not is_mix(r)).path}' is not: "
                        "report mixes and single-model runs separately")
    if mixes and slo is not None:  # a mix's models have their own latency targets (met_target)
        raise UserError(f"--slo with a mix run ('{mixes[0].path}'): a mix's models have their own latency targets, "
                        "in its mix file; drop --slo")
    folder.mkdir(parents=True, exist_ok=True)
    if mixes:
        return _mix_report(runs, output, folder)
    written: list[Path] = []
    lines = [f"# staronnx report: {', '.join(sorted({r.model_name for r in runs}))}", "", *(preface or []),
             "## Verdict", ""]
    first = (lambda run: [slo_sentence(slo_answer(run, slo))]) if slo is not None else (lambda run: [])
    lines += [f"- {sentence}" for sentence in verdict(runs, first)] + [""]
    warnings = [(run, w) for run in runs for w in noise_warnings(run)]
    if warnings:
        lines += ["**Noise** (these figures may not be the machine's own):", ""]
        named = dict(zip(map(id, runs), legend_labels(runs)))  # two runs of one label told apart
        lines += [f"- {named[id(run)] + ': ' if len(runs) > 1 else ''}{w}" for run, w in warnings] + [""]
    lines += [COLUMNS, ""]
    if len(runs) > 1:
        image = figures.save(figures.compare_figure(runs), folder / "compare.png")
        written.append(image)
        lines += ["## Comparison", "", f"![envelopes of every run]({link(folder, image)})", ""]
        lines += ["| run | rho_max q/s |", "|---|---:|"]
        for run, label in zip(runs, legend_labels(runs)):
            top, n = top_rate(run)
            open_ended = n is not None and figures.env.first_bounded(run.points).get(n) is None  # never congested
            figure = "none" if top is None else f"at least {top:g}" if open_ended else f"{top:g}"
            lines.append(f"| {label} | {figure} |")
        lines.append("")
    for i, (run, label) in enumerate(zip(runs, legend_labels(runs))):  # two sequence lengths: their headings apart
        lines += [f"## {label}", "", f"{figures.title_of(run)}; {figures.subtitle_of(run)}.", ""]
        if figures.env.usable(run.points).empty:
            every_failed = set(figures.failed_sizes(run.points)) == set(run.points.batch_size.astype(int))
            lines += ["Every point of this run failed: no figure. Check the model at its batch sizes with 'staronnx "
                      "profile MODEL --batch N'." if every_failed else
                      "Every point of this run is congested or failed: no figure. Sweep lower rates.", ""]
        else:
            for kind, draw in (("envelope", figures.envelope_figure), ("batches", figures.batches_figure)):
                image = figures.save(draw(run), folder / f"{i}_{run.path.name}_{kind}.png")
                written.append(image)
                lines += [f"![{kind}]({link(folder, image)})", ""]
        lines += ["### Best batch size at each rate", "", tables.markdown(tables.envelope_rows(run)),
                  "### Saturation per batch size", "", tables.markdown(tables.rho_rows(run)),
                  "### Run", "", "| key | value |", "|---|---|"]
        lines += [f"| {key} | `{run.meta.get(key)}` |" for key in META_KEYS if run.meta.get(key) not in (None, "")]
        lines.append("")
    write_text_atomic(output, "\n".join(lines) + "\n")
    return [output, *written]


def _mix_report(runs: list[Run], output: Path, folder: Path) -> list[Path]:
    """Per mix run: the answer in words, each model's latency at each scale, the figure and the run's metadata."""
    lines, written = [f"# staronnx report: {', '.join(run.model_name for run in runs)} (mixes)", ""], []
    for i, run in enumerate(runs):
        image = figures.save(mix_figure(run), folder / f"{i}_{run.path.name}_mix.png")
        written.append(image)
        lines += [f"## {run.label}", "", *[f"- {sentence}" for sentence in mix_summary(run)["verdict"]], "",
                  f"![mix]({link(folder, image)})", "", tables.markdown(mix_table_rows(run)),
                  "Cells: each model's mean max-latency per batch (ms) at that scale; '!' past its target.", "",
                  "| key | value |", "|---|---|"]
        lines += [f"| {key} | `{run.meta.get(key)}` |" for key in META_KEYS if run.meta.get(key) not in (None, "")]
        lines.append("")
    write_text_atomic(output, "\n".join(lines) + "\n")
    return [output, *written]


def link(folder: Path, image: Path) -> str:
    """A figure's path as a Markdown link destination, in <...>: a report or run named with a space or brackets
    ('whole (v2)') still shows its figures (CommonMark ends a bare destination at the first space)."""
    path = f"{folder.name}/{image.name}"
    if not any(c in path for c in " ()<>"):
        return path
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"
