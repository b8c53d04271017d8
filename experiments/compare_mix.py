"""Two models served together on this machine: staronnx (dmda, then the deadline policy) against a real Triton, one mix.

Each system sweeps the same mix (default: googlenet and mobilenet_v3_small, experiments/mixes/googlenet_mobilenet.toml)
over the same scales of its rates on the same cores (cpu:1x2), each through the CLI as a user would run it; the report
gives, per system, the largest scale at which both models meet their latency targets (from the lowest scale up), its
ratio to dmda's, and each model's worst-case latency at every scale.
Usage: python experiments/compare_mix.py [--mix FILE] [--scale 0.5:3:0.25] [--batches 30] [--out results/compare_mix]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from staronnx_cli.analysis.mix import mix_summary, mix_table_rows
from staronnx_cli.plots.tables import markdown, rich_table
from staronnx_cli.results.read import read_run

SYSTEMS = {  # run directory -> what selects the system
    "dmda": ["--policy", "dmda"],
    "deadline": ["--policy", "deadline"],
    "triton": ["--system", "triton"],
}
NO_SCALE_MET = 3  # sweep's exit code when it ran but no scale met every target: still an answer here
REFERENCE = "dmda"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", type=Path, default=Path("experiments/mixes/googlenet_mobilenet.toml"))
    parser.add_argument("--scale", default="0.5:3:0.25")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", default="cpu:1x2")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"some of {', '.join(SYSTEMS)}")
    parser.add_argument("--out", type=Path, default=Path("results/compare_mix"))
    args = parser.parse_args()
    unknown = [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        parser.error(f"--systems: '{unknown[0]}' is not one of {', '.join(SYSTEMS)}")
    console = Console()
    runs, skipped = {}, {}
    for system in args.systems.split(","):
        out = args.out / system
        console.print(f"[bold]{system}[/] ({args.workers}) ...")
        why = sweep(args, SYSTEMS[system], out)
        if why:  # e.g. Triton not installed: say so, compare the others
            skipped[system] = why
            console.print(f"  skipped: {why}")
            continue
        runs[system] = read_run(out)
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / "report.md"
    rows = summary_rows(runs)
    report.write_text(report_text(args, runs, rows, skipped))
    if rows:
        console.print(rich_table(rows, f"{args.mix.stem}: the largest scale meeting every target"))
    console.print(f"report: {report}")


def sweep(args, selects: list[str], out: Path) -> str:
    """Run one system's sweep; '' when it answered (exit 0, or 3: no scale met every target), else why not."""
    staronnx = Path(sys.executable).with_name("staronnx")  # this venv's CLI
    command = [str(staronnx), "sweep", "--mix", str(args.mix), *selects, "--workers", args.workers, "--scale",
               args.scale, "--batches", str(args.batches), "--warmup", str(args.warmup), "-o", str(out), "--force"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    last = ""
    assert proc.stderr is not None  # stderr=PIPE
    for line in proc.stderr:  # shown as it comes; its last line says why, should it fail
        sys.stderr.write(line)
        last = line.strip() or last
    if proc.wait() in (0, NO_SCALE_MET):
        return ""
    return f"exit code {proc.returncode}: {last}"


def largest_scale(run) -> float | None:
    best = mix_summary(run)["combinations"][0]["largest_scale"]
    return None if best is None else best["scale"]


def summary_rows(runs: dict) -> list[dict]:
    """Per system: the largest scale meeting both targets, each model's rate there, and its ratio to dmda's."""
    reference = largest_scale(runs[REFERENCE]) if REFERENCE in runs else None
    rows = []
    for system, run in runs.items():
        summary = mix_summary(run)["combinations"][0]
        best, failure = summary["largest_scale"], summary["first_failure"]
        top = None if best is None else best["scale"]
        rows.append({
            "system": system, "policy": run.meta.policy,
            "largest scale meeting every target": "none" if top is None else f"{top:g}",
            "rates there (q/s)": "" if best is None else
            ", ".join(f"{name} {m['rate_qps']:.4g}" for name, m in best["models"].items()),
            f"over {REFERENCE}": f"{top / reference:.3f}" if top and reference else "",
            "first failure": "" if failure is None else f"scale {failure['scale']:g}: " +
            "; ".join(f"{f['model']} {f['why']}" for f in failure["models"])})
    return rows


def report_text(args, runs: dict, rows: list[dict], skipped: dict) -> str:
    lines = [f"# {args.mix.stem}: staronnx (dmda, deadline) and Triton serving one mix",
             "",
             f"Mix `{args.mix}`, scales {args.scale}, {args.batches} measured batches after {args.warmup} warm-up "
             f"per point, workers {args.workers} for every system; {time.strftime('%Y-%m-%d %H:%M')} on this "
             "machine. A scale counts when every model meets its latency target at it and at every lower scale "
             "measured (one run per system: the ratios carry that run's noise).",
             "", "## The largest scale meeting every target", "", markdown(rows) if rows else "_no system ran_\n"]
    reference = largest_scale(runs[REFERENCE]) if REFERENCE in runs else None
    for system in [s for s in ("deadline", "triton") if s in runs and REFERENCE in runs]:
        top = largest_scale(runs[system])
        ratio = f"{top / reference:.3f}" if top and reference else "n/a (one of them met both targets at no scale)"
        lines.append(f"- {system} / {REFERENCE}: {ratio}")
    for system, why in skipped.items():
        lines.append(f"- {system}: not run ({why})")
    for system, run in runs.items():
        lines += ["", f"## {system}: worst-case latency per model (ms; '!' misses its target)", "",
                  markdown(mix_table_rows(run)), *(f"> {v}" for v in mix_summary(run)["verdict"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
