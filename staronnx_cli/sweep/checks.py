"""Everything a sweep checks before it measures anything: numbers in range, --resume against the run it continues,
the memory and the time it will take, and that ONNX Runtime loads what it will run. Each refusal is one line."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .. import modelio
from ..errors import UserError, ort_reason
from ..inputdata import InputData, check_input_data
from ..kinds import key_on_gpu, layout_key
from ..load.schedule import arrivals
from ..results.read import read_points
from ..results.rundir import RunDir
from ..results.runmeta import RunMeta
from ..results.schema import RUN_FILES, RUN_SCHEMA_VERSION, complete_text, read_run_meta
from ..runtime.platform import HOST_MODELS
from ..systems.target import Target
from .point import PointSpec, point_of
from .settings import SweepSettings

RECORD_BYTES, TASK_BYTES = 400, 120  # a batch's record, and each task's (measured: ~500 bytes with one task)


MAX_POINT_BATCHES = 1_000_000  # batches a point warms up or measures: more is a typo (and schedules exabytes)


def check_settings(s: SweepSettings) -> None:
    if s.output.exists() and not s.output.is_dir():
        raise UserError(f"-o '{s.output}' is a file: a sweep writes a run directory; choose another -o")
    linked = [name for name in RUN_FILES if (s.output / name).is_symlink()]
    if linked:  # refused before anything is measured: its rows would be written outside -o
        raise UserError(f"'{s.output / linked[0]}' is a symbolic link: staronnx never writes a result through one; "
                        "remove it, or choose another -o")
    if (s.output / "plan.json").exists():  # its files would sit beside the parts, and plot would read it as a run
        raise UserError(f"-o '{s.output}' is a split plan's directory: a sweep writes a run directory of its own; "
                        "choose another -o")
    if not s.force and not is_run(s.output) and any(not p.name.startswith(".") for p in _entries(s.output)):
        raise UserError(f"-o '{s.output}' holds other files and no run: choose a new or empty -o, or add --force to "
                        "write the run there")
    check_grid(s)
    arrivals(s.arrival, 1.0, 2, s.seed)  # an unknown kind or an unreadable trace fails here, before any work
    points = s.output / "points.csv"
    if points.exists() and not (s.resume or s.force):
        raise UserError(f"run directory '{s.output}' already has results: add --resume to continue it or --force "
                        "to start over")
    if s.resume and s.force:
        raise UserError("--resume and --force contradict: --resume continues the run, --force measures every point "
                        "again; choose one")
    if points.exists() and s.resume:
        meta = s.output / "run.json"
        if not meta.exists():
            raise UserError(f"run directory '{s.output}' has points.csv but no run.json (removed?): its points "
                            "cannot be continued without it; sweep into a new directory or use --force")
        version = read_run_meta(meta).get("schema_version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise UserError(f"run directory '{s.output}': its run.json's schema_version {version!r} is not a whole "
                            "number (edited?): sweep into a new directory or use --force")
        if version != RUN_SCHEMA_VERSION:
            raise UserError(f"run directory '{s.output}' was written by another staronnx (schema {version}, this "
                            f"one writes {RUN_SCHEMA_VERSION}): sweep into a new directory or use --force")
        try:
            rows = complete_text(points).count("\n")
        except UnicodeDecodeError:  # no text at all: the repair names the file before it changes anything
            rows = 0
        if rows > 1:  # a row to continue from: each checked before any is changed
            read_points(points)


def check_grid(s: SweepSettings) -> None:
    """What the sweep's own numbers allow, whatever machine runs it (a campaign checks its jobs by it before Ray
    starts): batch sizes, batch counts, seed, port, delay, and how long the arrivals take."""
    if any(b < 1 for b in s.batch_sizes):
        raise UserError(f"--batch {list(s.batch_sizes)}: batch sizes must be at least 1")
    if s.batches < 2:
        raise UserError(f"--batches {s.batches}: at least 2 measured batches per point (the paper uses 50)")
    for flag, value in (("--batches", s.batches), ("--warmup", s.warmup)):
        if value > MAX_POINT_BATCHES:
            raise UserError(f"{flag} {value}: at most {MAX_POINT_BATCHES:,} batches per point (the paper measures 50)")
    if s.sim_noise and s.engine != "sim":  # silently measured without it
        raise UserError("--sim-noise draws the simulator's task times: add --engine sim, or drop it for a real sweep")
    if s.warmup < 0:
        raise UserError(f"--warmup {s.warmup}: cannot be negative")
    if s.seed < 0:
        raise UserError(f"--seed {s.seed}: a seed is a non-negative integer")
    if not 0 <= s.triton_port <= 65533:  # it uses the port and the next two
        raise UserError(f"--triton-port {s.triton_port}: a TCP port from 1 to 65533 (it uses P, P+1, P+2), or 0 "
                        "for free ones")
    if s.triton_port and s.system != "triton":  # silently ignored
        raise UserError(f"--triton-port {s.triton_port} is the Triton server's port: add --system triton, or drop it")
    if s.max_queue_delay_ms is not None and not (0 <= s.max_queue_delay_ms < float("inf")):
        raise UserError(f"--max-queue-delay {s.max_queue_delay_ms:g}: a delay in ms must be a finite number, 0 or "
                        "more")
    check_duration(s)


def is_run(directory: Path) -> bool:
    """A sweep wrote here (its run.json at least: a sweep stopped before its first point)."""
    return any((directory / name).exists() for name in RUN_FILES)


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir()) if directory.is_dir() else []
    except OSError:  # unreadable: the sweep's own writes say so, with the fix
        return []


def output_notes(s: SweepSettings) -> list[str]:
    """What the output directory means for this sweep, said before it starts."""
    if s.resume and not is_run(s.output):
        return [f"--resume: '{s.output}' holds no run yet: this sweep starts one"]
    return []


SHARP_RANDOM_BATCHES = 120  # K random batches near the capacity judged as sharply as fixed ones (docs/sweep.md)


def platform_notes(s: SweepSettings) -> list[str]:
    """A platform whose times fall as the batch grows (noise, or an edit): said before a simulated sweep uses them,
    as `platform check` says it."""
    if s.engine != "sim" or s.platform is None:
        return []
    from ..runtime.platform import falling_times, read_platform

    return [f"in {s.platform.name}, a larger batch takes less time: {where} (noise, or an edit?): the simulator "
            "uses them as they are between those sizes" for where in falling_times(read_platform(s.platform))[:3]]


def arrival_notes(s: SweepSettings, given: str = "") -> list[str]:
    """Random arrivals over few batches: verdicts near the capacity blur; said before the sweep, with the fix.
    `given`: where the arrival process was chosen, when not --arrival (a mix file's entry)."""
    if s.arrival == "fixed" or s.batches >= SHARP_RANDOM_BATCHES:
        return []
    return [f"{given or '--arrival ' + s.arrival} with --batches {s.batches}: near the capacity a random burst's "
            f"queue and a lost load look alike over so few batches; give --batches {SHARP_RANDOM_BATCHES} or more for "
            "sharp verdicts there (docs/sweep.md)"]


def _target_words(meta, key: str) -> str:
    """A run's model or plan in words, for a --resume that changed it."""
    name = meta.get("model_name") or Path(str(meta.get("target") or "?")).name
    if key == "plan_sha256" and not meta.get(key):
        return f"the whole {name} (no plan)"
    return f"{'a plan of ' if key == 'plan_sha256' else ''}{name} (sha256 {str(meta.get(key))[:12]})"


RESUME_KEYS = ("model_sha256", "plan_sha256", "system", "engine", "workers", "policy", "arrival",
               "max_queue_delay_ms", "batches", "warmup", "seed", "cuda_graphs", "input_data")


def _same_data(old, new) -> bool:
    """The same inputs: random, zeros, or a file of the same bytes (its sha256), whatever its name now (a run
    written before the key was fed random inputs)."""
    def key(words) -> str:
        found = re.search(r"\(sha256 ([0-9a-f]+)\)", str(words))
        return found.group(1) if found else str(words)

    return key(old) == key(new)


def check_resume(meta: RunMeta, run_dir: Path) -> None:
    """--resume continues the same run: same model, system, workers, policy, load and batch counts."""
    old = RunDir(run_dir).read_meta()
    if not isinstance(old.get("judging"), int) or isinstance(old.get("judging"), bool):
        raise UserError(f"--resume: '{run_dir}/run.json' holds judging {old.get('judging')!r}, not a whole number "
                        "(edited?): sweep into a new -o, or start over with --force")
    if old.get("judging") != meta.get("judging"):
        raise UserError(f"--resume: '{run_dir}' was measured by the point rules of staronnx {old.get('staronnx')!r} "
                        f"(version {old.get('judging')}; this one: {meta.get('judging')}): its points and new ones "
                        "would not compare; sweep into a new -o, or start over with --force")
    if old.get("mix") and not meta.get("mix"):
        raise UserError(f"--resume: '{run_dir}' is a mix's run (sweep --mix): resume it with the same --mix file, or "
                        "sweep this model into a new -o")
    for key in ("model_sha256", "plan_sha256"):
        if old.get(key) != meta.get(key):
            raise UserError(f"--resume: '{run_dir}' measured {_target_words(old, key)}, this sweep "
                            f"{_target_words(meta, key)}: resume with the same target, a new -o, or --force")
    for key in RESUME_KEYS:
        same = layout_key(str(old.get(key))) == layout_key(str(meta.get(key))) if key == "workers" else \
            _same_data(old.get(key, "random"), meta.get(key)) if key == "input_data" else old.get(key) == meta.get(key)
        if not same:
            raise UserError(f"--resume: '{run_dir}' was measured with {key} = {old.get(key)!r}, this sweep has "
                            f"{meta.get(key)!r}: use the same settings, a new -o, or --force")
    _check_hot_path(old.get("hot_path"), meta.get("hot_path"), run_dir)
    if meta.get("engine") == "sim":  # the simulated machine is a setting too: one run, one machine
        if old.get("platform") == HOST_MODELS == meta.get("platform"):
            _check_host_times(old.get("host_times"), meta.get("host_times"), run_dir)
        if old.get("platform_sha256") != meta.get("platform_sha256"):
            raise UserError(f"--resume: '{run_dir}' was simulated on {old.get('platform')!r} (sha256 "
                            f"{str(old.get('platform_sha256'))[:12]}), this sweep on {meta.get('platform')!r} (sha256 "
                            f"{str(meta.get('platform_sha256'))[:12]}): resume with that platform file as it was, a "
                            "new -o, or --force")
        if bool(old.get("sim_noise")) != bool(meta.get("sim_noise")):
            raise UserError(f"--resume: '{run_dir}' was simulated {'with' if old.get('sim_noise') else 'without'} "
                            "--sim-noise: use the same settings, a new -o, or --force")


def _check_hot_path(old, new, run_dir: Path) -> None:
    """The native core and the Python scheduler differ several times over in their cost per task (on tiny models,
    in latency): points of both in one run would not compare."""
    was, now = (str(path or "").partition(" (")[0] for path in (old, new))
    if was and now and was != now:
        how = "with STARONNX_HOT_PATH=python" if was.startswith("python") else "without STARONNX_HOT_PATH=python"
        raise UserError(f"--resume: '{run_dir}' was measured on the {was}, this sweep runs on the {new}: their costs "
                        f"per task differ, so their points would not compare; resume it {how}, sweep into a new -o, "
                        "or start over with --force")


def _check_host_times(old, new, run_dir: Path) -> None:
    """A simulated run from this host's performance models resumes on the times its points were simulated with
    (those both sweeps use; a run written before they were recorded is not checked)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    moved = sorted(key for key in old.keys() & new.keys() if old[key] != new[key])
    if moved:
        part, kind, n = moved[0].split()
        raise UserError(f"--resume: '{run_dir}' was simulated with this host's performance models as they were; a "
                        f"real sweep has changed them since (part {part} on {kind} at N={n}: "
                        f"{1000 * old[moved[0]][0]:.4g} ms then, {1000 * new[moved[0]][0]:.4g} ms now): its points "
                        "would be simulated on another machine than its earlier ones; sweep into a new -o, or --force")


def memory_needed(s: SweepSettings, target: Target, workers) -> tuple[int, str]:
    """What the largest point holds at once: its arrival schedule and batch records (extensions included), the
    input batches (a host copy, and a pinned one per GPU worker), and ONNX Runtime's tensors: every worker may run
    the largest part at once, each holding at most all of that part's intermediate tensors (ORT's planner reuses
    some, so this is a bound, not a forecast; the simulated engine runs none)."""
    n = max(s.batch_sizes)
    batches = max((point_of(m, r, s.warmup, s.batches).most_batches for m in s.batch_sizes for r in s.rates),
                  default=PointSpec(n, 1.0, s.warmup, s.batches).most_batches)  # auto rates: floors not known yet
    parts = len(target.part_files)
    schedule = n * batches * 8 + batches * (4 * 8 + RECORD_BYTES + parts * TASK_BYTES)
    per_sample = sum(target.graph.input_bytes_per_sample[p].get(-1, 0) for p in range(parts))
    inputs = 0 if s.engine == "sim" else per_sample * n * (1 + sum(w.on_gpu for w in workers))  # sim: counts bytes
    tensors = 0 if s.engine == "sim" else max(map(activation_bytes_per_sample, target.part_files)) * n * len(workers)
    return schedule + inputs + tensors, (
        f"{batches:,} batches of {n} at the largest point: {schedule / 2**30:.2f} GiB of schedule and records, "
        f"{inputs / 2**30:.2f} GiB of input batches, up to {tensors / 2**30:.2f} GiB of ONNX Runtime tensors on "
        f"{len(workers)} worker(s)")


def activation_bytes_per_sample(part: Path) -> int:
    """Bytes per sample of all the tensors a model's nodes write (0 where shape inference cannot tell)."""
    from .. import modelio

    return sum(modelio.tensor_bytes_by_node(modelio.load_model(part, with_weights=False), 1).values())


def check_target_data(data: InputData, target: Target, what: str = "the model") -> None:
    """A samples file against the inputs of the model or plan it feeds: one line before any point (a point would
    only fail)."""
    if data.is_file:
        protos = [modelio.load_model(p, with_weights=False) for p in target.part_files]
        check_input_data(data, modelio.plan_input_specs(protos), what)


def check_loadable(target: Target) -> None:
    """A model or plan part ONNX Runtime cannot load is a user error before the first point (not a run of failed
    points): each part is loaded once on the CPU, without graph optimisation (fast)."""
    import onnxruntime as ort

    from ..ortenv import session_options

    for part in target.part_files:
        try:
            ort.InferenceSession(str(part), session_options(1, "disabled"), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/NotImplemented types
            raise UserError(f"ONNX Runtime cannot load '{part}' ({ort_reason(exc)}): check the model with "
                            "'staronnx profile', or re-export it") from None


def arrival_seconds(s: SweepSettings) -> float:
    """How long the grid's queries take to arrive, at the least: (warm-up + measured) batches of N queries at each
    rate, without the extensions a rising point may add; the sweep cannot be shorter on the real clock."""
    return sum(point_of(n, rate, s.warmup, s.batches).planned * n / rate
               for n in s.batch_sizes for rate in s.rates)  # auto: 0 until known


def check_duration(s: SweepSettings) -> None:
    if not (s.max_hours > 0 and math.isfinite(s.max_hours)):
        raise UserError(f"--max-hours {s.max_hours:g}: give a positive, finite number of hours")
    hours = arrival_seconds(s) / 3600
    if s.engine == "real" and hours > s.max_hours:
        n, rate = max(s.batch_sizes), min(s.rates)
        plain = lambda x: f"{x:,.0f}" if 100 <= x < 1e9 else f"{x:.3g}"  # noqa: E731 - exponents only past 1e9
        raise UserError(f"this sweep's queries alone take {plain(hours)} h to arrive (batch {n} at {rate:g} q/s "
                        f"fills one batch every {plain(n / rate)} s), more than --max-hours {s.max_hours:g}: lower "
                        "--batch or --batches, raise the lowest --rate, or raise --max-hours")


def check_memory(s: SweepSettings, target: Target, workers) -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 2**34
    limit_gib = s.max_memory_gib if s.max_memory_gib is not None else total / 2 / 2**30
    if not (limit_gib > 0 and math.isfinite(limit_gib)):
        raise UserError(f"--max-memory {limit_gib:g}: give a positive, finite number of GiB")
    needed, why = memory_needed(s, target, workers)
    if needed > limit_gib * 2**30:
        fix = "lower --batches or the largest --batch, or raise --max-memory" if max(s.batch_sizes) > 1 else \
            "lower --batches, or raise --max-memory (at batch 1, the model's own sample may be too large: check its " \
            "input shapes)"
        raise UserError(f"this sweep needs about {needed / 2**30:.3g} GiB ({why}), more than --max-memory "
                        f"{limit_gib:.3g} GiB: {fix}")


def layout_warnings(target: Target, workers, system: str, machine: tuple[int, bool] | None = None) -> list[str]:
    """A plan whose parts cannot run side by side on these workers: said once before the sweep, with the fix.
    `machine`: this host's usable cores and whether its GPU is usable, for fixes it can run (a simulated sweep's
    machine is its platform's: examples then)."""
    parts = len(target.part_files)
    if parts < 2 or system != "staronnx":
        return []
    cores, gpu = machine or (16, True)
    count = max(1, min(parts, cores))  # workers side by side, each a core group of its own: as many as cores allow
    per_part = f"cpu:{count}x{max(1, cores // count)}" if count < parts else \
        ",".join([f"cpu:1x{cores // count}"] * count)
    beside = f"cuda:0,cpu:1x{max(1, cores - 1)}"
    warnings = []
    if len(workers) == 1 and target.split_method == "branches":
        layouts = " or --workers ".join(([per_part] if cores >= 2 else []) + (["cuda:0x2"] if gpu else []))
        warnings.append(f"a branch plan of {parts} parts on a single worker ({workers[0].name}): its branches run "
                        "one after the other, so it cannot be faster than the whole model here; "
                        + (f"give its branches workers side by side, e.g. --workers {layouts}" if layouts else
                           "this machine has one core and no GPU: sweep the whole model instead"))
    elif len(workers) == 1:
        layouts = " or --workers ".join(([per_part] if cores >= 2 else []) + ([beside] if gpu else []))
        warnings.append(f"a {parts}-part plan on a single worker ({workers[0].name}): its parts run one after "
                        "the other on the same cores, so splitting cannot raise saturation here; "
                        + (f"give each device its worker, e.g. --workers {layouts}" if layouts else
                           "this machine has one core and no GPU: sweep the whole model instead"))
    if key_on_gpu(target.costs_device) and not any(w.on_gpu for w in workers):
        warnings.append(f"this plan was split on GPU costs ({target.costs_device}) but no worker is a GPU: it "
                        "measures the split on CPU workers only; "
                        + (f"add one, e.g. --workers {beside}" if gpu else
                           "this machine has no usable GPU: split on CPU costs for it (staronnx split MODEL)"))
    return warnings
