"""One offline command that verifies every GPU piece, step by step, each under its own time cap (`make gpu-check`).

Made for the first minutes of a lent GPU machine (no network, a few minutes of device time): each step runs in a
process of its own, killed at its cap, and writes its files under one directory; `gpu_check.json` there says, after
every step, which passed and what they measured. The steps, in order:

  doctor        `staronnx doctor`: CUDA usable, CuPy, CUPTI
  tests         the GPU tests (tests/test_gpu_*.py: real CUDA calls on tiny models, and their logic)
  profile       experiments/gpu_profile_check.py at batch 1 and 32: node sums vs CUPTI within 5 %, three splits
  split-sweep   a 10 % split at batch 32 (GPU costs), swept with --workers auto (a CPU worker fetching from the GPU)
                and with cuda:0x2 (two workers on one GPU passing parts on the device); CUDA graphs, the link
  bench         experiments/gpu_bench.py on a short grid: cuda:0, cuda:0x2, cuda:0x4, auto against native
  mix           one scale of a GPU mix (the model and tiny_cnn served together on cuda:0)
  opara         a branch plan (split --method branches --streams 2, GPU costs at batch 1) on cuda:0x2 against the
                whole model with its CUDA graph on the same workers: a query's latency at low load (issue 28's
                target: the ratio <= 0.85); and ONNX Runtime's logic streams laid out by that plan (--system
                ortstreams on cuda:0)

Before the steps, the runtime's native waits are compiled in place if they are missing (experiments/build_native.py:
a checkout used from PYTHONPATH was never pip-installed). Without CUDA every step says "no GPU" and the summary says
so (exit 0). `--cpu-layouts` runs the whole sequence
with CPU layouts in place of the GPU's (the bookkeeping, checked on any machine; the tests use it).
Usage: python experiments/gpu_check.py [--model googlenet] [--out results/gpu_check] [--cpu-layouts]
Exit code: 0 when every step passed (or there is no GPU), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))


@dataclass(frozen=True)
class Layouts:
    """What each step runs on: the GPU's layouts, or CPU ones standing in for them (--cpu-layouts)."""

    device: str  # profile --device
    split_sweeps: tuple[tuple[str, str], ...]  # (--workers, what it checks)
    mix_workers: str
    bench_flag: tuple[str, ...]
    tests: tuple[str, ...]
    opara_workers: str  # the branch plan's workers, and the whole model's for the comparison
    opara_split: tuple[str, ...]  # more split options (a tiny model's branches are worth less than 50 us)
    opara_session: str  # the one worker of ONNX Runtime's logic streams (--system ortstreams)


GPU = Layouts("cuda", (("auto", "a CPU worker fetching from the GPU"), ("cuda:0x2", "two workers on one GPU")),
              "cuda:0", (), ("tests/test_gpu_device.py", "tests/test_gpu_logic.py", "tests/test_gpu_profile.py",
                             "tests/test_gpu_times.py"), "cuda:0x2", (), "cuda:0")
CPU = Layouts("cpu", (("cpu:2x1", "two CPU workers passing parts"), ("cpu:1x1", "one CPU worker")), "cpu:1x1",
              ("--cpu",), ("tests/test_gpu_logic.py",), "cpu:2x1", ("--min-part-us", "0"), "cpu:1x1")

STEPS = (("doctor", 25), ("tests", 60), ("profile", 75), ("split-sweep", 75), ("bench", 160), ("mix", 40),
         ("opara", 45))
"""Each step's cap in seconds, on an H100-class machine with googlenet: 480 s in all, within 8 minutes."""

OPARA_TARGET = 0.85  # issue 28: the branch plan's latency over the whole model's with a CUDA graph, on cuda:0x2


def staronnx(log, *args) -> None:
    run(log, [sys.executable, "-m", "staronnx_cli", *map(str, args)])


def run(log, command: list[str]) -> None:
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


# -- the steps: each runs in a child process, writes OUT/STEP/result.json (passed, figures), raises on failure ------
def step_doctor(out: Path, model: str, layouts: Layouts, log) -> dict:
    staronnx(log, "doctor")
    text = (out / "log.txt").read_text()
    row = next((line for line in text.splitlines() if "CUDA" in line and "usable" in line), "")
    cuda = " ".join(cell.strip() for cell in row.replace("│", "|").split("|")[1:] if cell.strip()) or row.strip()
    usable = "not usable" not in cuda
    return {"passed": usable or layouts is CPU, "figures": {"cuda": cuda}}


def step_tests(out: Path, model: str, layouts: Layouts, log) -> dict:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *layouts.tests]
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    last = [line for line in (out / "log.txt").read_text().splitlines() if line.strip()][-1:]
    return {"passed": done.returncode == 0, "figures": {"pytest": last[0] if last else ""}}


def step_profile(out: Path, model: str, layouts: Layouts, log) -> dict:
    command = [sys.executable, str(ROOT / "experiments" / "gpu_profile_check.py"), "--model", model, "--batch", "1,32",
               "--device", layouts.device, "--out", str(out)]
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    check = json.loads((out / "check.json").read_text())
    figures = {"node_sum_over_cupti": {}, "splits": check["splits"]}
    for batch, meta in check["meta"]["batches"].items():
        kernel = ((meta.get("gpu") or {}).get("kernel_us_per_run") or {}).get("mean_us")
        figures["node_sum_over_cupti"][batch] = round(meta["node_sum_us"] / kernel, 4) if kernel else None
    return {"passed": bool(check["passed"]), "figures": figures}


def _costs(out: Path, model: str, layouts: Layouts, log, batch: int) -> Path:
    """The profile step's costs (batches 1 and 32), or, where it failed or was skipped, a profile at `batch` here."""
    costs = out.parent / "profile" / f"costs_{layouts.device}.csv"
    if not costs.exists():
        costs = out / f"costs_{layouts.device}.csv"
        staronnx(log, "profile", model, "--device", layouts.device, "--batch", batch, "--runs", 10, "-o", costs,
                 "--force")
    return costs


def step_split_sweep(out: Path, model: str, layouts: Layouts, log) -> dict:
    import pandas as pd

    plan = out / "plan"
    staronnx(log, "split", model, "--costs", _costs(out, model, layouts, log, 32), "--offload", 0.1, "--parts", 2,
             "--batch", 32, "-o", plan, "--force")
    figures, passed = {}, True
    for workers, what in layouts.split_sweeps:
        run_dir = out / workers.replace(":", "_").replace(",", "_")
        staronnx(log, "sweep", plan, "--workers", workers, "--batch", 32, "--rate", "auto", "--batches", 20,
                 "--warmup", 3, "-o", run_dir, "--force")
        points = pd.read_csv(run_dir / "points.csv")
        batches = pd.read_csv(run_dir / "batches.csv")
        meta = json.loads((run_dir / "run.json").read_text())
        errors = sorted(set(points.errors.dropna().astype(str)) - {""})
        placed: dict[str, int] = {}
        for cell in batches.placement.dropna().astype(str):
            for task in cell.split(","):
                worker = task.partition(":")[2]
                placed[worker] = placed.get(worker, 0) + 1
        graphs = meta.get("cuda_graph_parts", [])
        kept = all(note.endswith(": CUDA graph") for note in graphs)
        ok = not errors and len(points) > 0 and (layouts is CPU or (graphs and kept and bool(meta.get("transfer"))))
        passed &= ok
        figures[workers] = {"checks": what, "passed": ok, "errors": errors, "tasks_per_worker": placed,
                            "rho_max_qps": _rho_max(points), "cuda_graph_parts": graphs,
                            "transfer": meta.get("transfer"), "transfer_measured": meta.get("transfer_measured")}
    return {"passed": passed, "figures": figures}


def step_bench(out: Path, model: str, layouts: Layouts, log) -> dict:
    run(log, [sys.executable, str(ROOT / "experiments" / "gpu_bench.py"), "--model", model, "--batch", "1,8",
              "--batches", "30", "--fractions", "0.5,0.9,1.2,1.6,2.2", "--out", str(out), *layouts.bench_flag])
    bench = json.loads((out / model / "bench.json").read_text())
    figures = {}
    for n, result in bench.items():
        native = result["layouts"].get("native") or {}
        figures[f"N={n}"] = {name: {"S_ms": f.get("service_ms"), "rho_max_qps": f.get("rho_max_qps"),
                                    "S_over_native": _ratio(f.get("service_ms"), native.get("service_ms")),
                                    "rho_max_over_native": _ratio(f.get("rho_max_qps"), native.get("rho_max_qps"))}
                             for name, f in result["layouts"].items()}
    measured = all(len(result["layouts"]) >= 2 for result in bench.values())
    return {"passed": measured and len(bench) == 2, "figures": figures}


def step_mix(out: Path, model: str, layouts: Layouts, log) -> dict:
    import pandas as pd

    mix = out / "mix.toml"
    mix.write_text(f'[[model]]\nname = "main"\nmodel = "{model}"\nrate = 40\nbatch = 4\ntarget_ms = 200\n\n'
                   '[[model]]\nname = "tiny"\nmodel = "tiny_cnn"\nrate = 100\nbatch = 4\ntarget_ms = 200\n')
    run_dir = out / "run"
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", "sweep", "--mix", str(mix), "--workers",
                           layouts.mix_workers, "--scale", "1", "--batches", "15", "--warmup", "2", "-o", str(run_dir),
                           "--force"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    points = pd.read_csv(run_dir / "points.csv")
    errors = sorted(set(points.errors.dropna().astype(str)) - {""})
    figures = {"exit_code": done.returncode, "errors": errors,
               "max_latency_ms": {m: round(float(v), 3) for m, v in
                                  zip(points.model, points.mean_max_latency_ms) if v == v}}
    return {"passed": done.returncode in (0, 3) and not errors and len(points) == 2, "figures": figures}


def step_opara(out: Path, model: str, layouts: Layouts, log) -> dict:
    import pandas as pd

    plan = out / "plan"
    staronnx(log, "split", model, "--costs", _costs(out, model, layouts, log, 1), "--method", "branches", "--streams",
             2, "--batch", 1, *layouts.opara_split, "-o", plan, "--force")
    latency, errors = {}, []
    for name, target, system, workers in (("whole", model, "staronnx", layouts.opara_workers),
                                          ("branches", plan, "staronnx", layouts.opara_workers),
                                          ("ortstreams", plan, "ortstreams", layouts.opara_session)):
        run_dir = out / name  # exit 3 (no uncongested point) is a measurement too: its row says why
        command = [sys.executable, "-m", "staronnx_cli", "sweep", str(target), "--system", system, "--workers",
                   workers, "--batch", "1", "--rate", "20", "--batches", "40", "--warmup", "5", "-o", str(run_dir),
                   "--force"]
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if done.returncode not in (0, 3):
            raise RuntimeError(f"sweep of the {name} model exited {done.returncode}")
        point = pd.read_csv(run_dir / "points.csv").iloc[0]
        errors += [str(point.errors)] if isinstance(point.errors, str) and point.errors else []
        errors += [f"{name}: {point.reason}"] if str(point.congested).lower() in ("true", "1") else []
        latency[name] = float(point.mean_max_latency_ms) if point.mean_max_latency_ms == point.mean_max_latency_ms \
            else None
    ratio = _ratio(latency["branches"], latency["whole"])
    dag = json.loads((plan / "plan.json").read_text())["dag"]
    figures = {"workers": layouts.opara_workers, "latency_ms": latency, "branches_over_whole": ratio,
               "ortstreams_over_whole": _ratio(latency["ortstreams"], latency["whole"]),
               "target": f"<= {OPARA_TARGET}", "target_met": ratio is not None and ratio <= OPARA_TARGET,
               "parts": len(json.loads((plan / "plan.json").read_text())["parts"]),
               "parallelism": dag.get("parallelism"), "errors": errors}
    return {"passed": not errors and None not in latency.values(), "figures": figures}


def _ratio(a, b):
    return round(a / b, 3) if a and b else None


def _rho_max(points) -> float | None:
    fine = points[~points.congested.astype(str).str.lower().isin(["true", "1"])]
    return float(fine.rate_qps.max()) if len(fine) else None


RUNNERS = {"doctor": step_doctor, "tests": step_tests, "profile": step_profile, "split-sweep": step_split_sweep,
           "bench": step_bench, "mix": step_mix, "opara": step_opara}


def run_step(name: str, out: Path, model: str, cpu_layouts: bool) -> int:
    """The child: one step, its log and its result.json."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "w") as log:
        try:
            result = RUNNERS[name](out, model, CPU if cpu_layouts else GPU, log)
        except Exception as exc:  # noqa: BLE001 - a failed step is a result: its first line, and the log
            result = {"passed": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if result["passed"] else 1


# -- the parent: steps in order, each capped ----------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="googlenet")
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    parser.add_argument("--cpu-layouts", action="store_true", help="CPU layouts for the GPU's: runs anywhere")
    parser.add_argument("--cap-scale", type=float, default=1.0, help="multiply every step's cap (a slower machine)")
    parser.add_argument("--steps", default=",".join(name for name, _ in STEPS), help="a subset, in order")
    parser.add_argument("--run-step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.out.resolve()
    if args.run_step:
        return run_step(args.run_step, out / args.run_step, args.model, args.cpu_layouts)

    sys.path.insert(0, str(ROOT))
    from staronnx_cli.ortenv import cuda_status

    status = cuda_status()
    gpu = status.usable
    chosen = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in RUNNERS]
    if unknown:
        print(f"--steps: {', '.join(unknown)} unknown; the steps are {', '.join(RUNNERS)}", file=sys.stderr)
        return 2
    steps = [(name, cap * args.cap_scale) for name, cap in STEPS if name in chosen]
    mode = "GPU" if gpu else "CPU layouts" if args.cpu_layouts else "no GPU"
    caps = ", ".join(f"{name} {cap:.0f} s" for name, cap in steps)
    print(f"gpu-check ({mode}; {status.reason}): {len(steps)} steps, caps {caps}; "
          f"at most {sum(c for _, c in steps):.0f} s in all")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"gpu": gpu, "cuda": status.reason, "mode": mode, "model": args.model, "steps": {},
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if gpu or args.cpu_layouts:  # a checkout used in place (no pip install) has no native waits yet: build them
        from build_native import build

        why = build()
        summary["hot_path"] = "native" if not why else f"python ({why})"
        print(f"  hot path: {summary['hot_path']}")
    for name, cap in steps:
        if not gpu and not args.cpu_layouts:
            summary["steps"][name] = {"status": "no GPU", "cap_s": cap}
            print(f"  {name:<12} no GPU")
            _write(out, summary)
            continue
        t0 = time.monotonic()
        result = _capped(name, cap, out, args)
        seconds = round(time.monotonic() - t0, 1)
        summary["steps"][name] = {**result, "seconds": seconds, "cap_s": cap}
        _write(out, summary)
        state = result["status"]
        print(f"  {name:<12} {state:<7} {seconds:>6.1f} s  " + (result.get("error") or _short(result.get("figures"))))
    statuses = [s["status"] for s in summary["steps"].values()]
    summary["passed"] = all(s in ("passed", "no GPU") for s in statuses)
    summary["summary"] = "no GPU: nothing checked" if set(statuses) == {"no GPU"} else (
        f"{statuses.count('passed')} of {len(statuses)} steps passed")
    _write(out, summary)
    print(f"gpu-check: {summary['summary']}; {out / 'gpu_check.json'}")
    return 0 if summary["passed"] else 1


def _capped(name: str, cap: float, out: Path, args) -> dict:
    """The step in a child process of its own session, killed (with its children) at its cap."""
    command = [sys.executable, __file__, "--run-step", name, "--model", args.model, "--out", str(out)]
    if args.cpu_layouts:
        command.append("--cpu-layouts")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        child.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return {"status": "timeout", "error": f"killed at its cap of {cap:.0f} s; see {out / name / 'log.txt'}"}
    result_file = out / name / "result.json"
    if not result_file.exists():
        return {"status": "failed", "error": f"exit {child.returncode} before a result; see {out / name / 'log.txt'}"}
    result = json.loads(result_file.read_text())
    return {"status": "passed" if result.get("passed") else "failed", **result}


def _short(figures) -> str:
    text = json.dumps(figures, default=str) if figures else ""
    return text if len(text) <= 110 else text[:107] + "..."


def _write(out: Path, summary: dict) -> None:
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    tmp.replace(out / "gpu_check.json")


if __name__ == "__main__":
    sys.exit(main())
