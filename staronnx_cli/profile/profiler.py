"""Run a model under ONNX Runtime's profiler (and, on a GPU, CUPTI) and turn the traces into per-node costs.

On CUDA, ORT's profiler sees only when each node *launched* its kernels; CUPTI records what the GPU did.
Where CUPTI is available the measured runs are recorded by both, and each node's time is its GPU time
(gpu_times.py); where it is not, the host times are kept and marked `host-launch`, with the reason.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .. import modelio
from ..devices import Device
from ..errors import UserError, baked_batch_hint, first_line, ort_reason
from ..inputdata import RANDOM, InputData, check_input_data
from ..memlimit import memory_ceiling, out_of_memory
from ..ortenv import FATAL_SEVERITY, cuda_status, session_options
from ..zoo.names import typed_name
from .controlflow import correct_rows, has_control_flow
from .costs import main_timing, write_costs
from .gpu_times import GpuRecording, GpuTimes, attribute_gpu_activity
from .rows import CPU_PROVIDER, node_rows
from .trace import Trace, load_trace

MIN_ATTRIBUTED = 0.9  # below this share of GPU time matched to runs, CUPTI's records are not trusted


@dataclass
class ProfileSettings:
    model: Path
    device: Device
    batch_sizes: list[int]
    runs: int = 20
    warmup: int = 3
    opt_level: str = "basic"
    overhead: bool = True  # also time runs without the profiler, and at the full optimisation level
    input_data: InputData = RANDOM  # what the model is fed (--input-data)


@dataclass
class GpuStats:
    """What the GPU did in each measured run (CUPTI), and with ORT's profiler off."""

    kernels_per_run: float
    kernel_us: list[float]  # all kernels of each measured run: the GPU's compute time per run
    node_us: list[float]  # what was attributed to nodes (kernels, and the nodes' own copies and memsets)
    outside_us: list[float]  # launched by no node: ORT's copies of the inputs in and the outputs out
    attributed_fraction: float
    plain_kernel_us: float | None = None  # kernel time per run with ORT's profiler off (CUPTI alone)
    dropped_records: int = 0  # incomplete CUPTI records left out

    @property
    def profiler_ratio(self) -> float | None:
        """GPU time per run with ORT's profiler on / CUPTI alone."""
        if not self.plain_kernel_us:
            return None
        return statistics.fmean(self.kernel_us) / self.plain_kernel_us


@dataclass
class BatchProfile:
    batch_size: int
    rows: list[dict]
    run_us: list[int]  # end-to-end time of each measured (profiled) run
    plain_run_us: list[int] = field(default_factory=list)  # same level, profiler off
    full_opt_run_us: list[int] = field(default_factory=list)  # level "all", profiler off
    gpu: GpuStats | None = None
    timing: str = "cpu"  # the clock of this batch size's node times: cpu, gpu or host-launch
    note: str = ""  # why a CUDA profile fell back to host launch times
    notes: list[str] = field(default_factory=list)  # control-flow nodes timed alone (controlflow.py)

    @property
    def node_sum_us(self) -> float:
        return sum(r["mean_us"] for r in self.rows)

    @property
    def end_to_end_us(self) -> float:
        return statistics.fmean(self.run_us)


@dataclass
class ProfileResult:
    batches: list[BatchProfile]
    gpu_clock: str = ""  # on CUDA: "cupti-python X" when node times come from the GPU, else ""
    note: str = ""  # on CUDA without CUPTI: why (one line)
    whole_inputs: tuple[str, ...] = ()  # inputs without a batch axis, given whole to every batch


MAX_RUNS = 10_000  # per batch size: ONNX Runtime's profiler keeps at most a million events, and more is a typo


def check_settings(settings: ProfileSettings) -> None:
    if not 1 <= settings.runs <= MAX_RUNS:
        raise UserError(f"--runs {settings.runs}: give 1 to {MAX_RUNS:,} measured runs, e.g. --runs 20")
    if not 0 <= settings.warmup <= MAX_RUNS:
        raise UserError(f"--warmup {settings.warmup}: give 0 to {MAX_RUNS:,} warm-up runs")
    if not settings.batch_sizes or any(b < 1 for b in settings.batch_sizes):
        raise UserError(f"--batch {settings.batch_sizes}: batch sizes must be positive integers, e.g. --batch 1,8")
    if settings.device.on_gpu:
        status = cuda_status()
        if not status.usable:
            raise UserError(f"--device {settings.device}: CUDA is not usable here ({status.reason}); "
                            "profile on the CPU with --device cpu")


def profile_model(settings: ProfileSettings, on_batch=None) -> ProfileResult:
    """Profile every batch size; `on_batch(batch, done_runs, total_runs)` reports progress."""
    check_settings(settings)
    model = modelio.load_model(settings.model)
    specs = modelio.input_specs(model)
    check_input_data(settings.input_data, specs)
    modelio.check_node_names(model)
    check_memory(model, specs, max(settings.batch_sizes))
    recorder, note = _gpu_recorder(settings.device)
    result = ProfileResult([], recorder.source if recorder else "", note, tuple(sorted(modelio.whole_inputs(specs))))
    with memory_ceiling() as ceiling:  # past the memory there is: one line, not the kernel's silent kill
        for batch in settings.batch_sizes:
            try:
                profiled = _profile_batch(settings, model, specs, batch, on_batch, recorder)
            except Exception as exc:
                if not out_of_memory(exc):
                    raise
                room = f" (more than the {ceiling / 2**30:.3g} GiB this machine had to give)" if ceiling else ""
                raise UserError(f"profiling {typed_name(settings.model)} at batch {batch} ran out of memory{room}: "
                                "profile a smaller --batch") from None
            if profiled.note and recorder is not None:  # CUPTI's records did not hold up: trust them no further
                recorder, result.note = None, profiled.note
            result.batches.append(profiled)
    return result


def check_memory(model, specs, batch: int) -> None:
    """What the largest batch needs at the least (its inputs and the largest tensor a node writes, held at once;
    ONNX Runtime reuses the others' buffers), against this machine's memory: a model with an input of 1e9 values
    per sample grew to 12 GB in 15 s before. A bound that never refuses what runs (efficientnetv2_s at batch 32:
    1 GiB at its peak, where the sum of every node's outputs reads 18 GiB)."""
    import os

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 2**34
    inputs = sum(int(np.prod(s.shape, dtype=np.float64)) * s.dtype.itemsize for s in specs) * batch
    needed = inputs + max(modelio.tensor_bytes_by_node(model, batch).values(), default=0)
    if needed > total:
        fix = "profile a smaller --batch" if batch > 1 else \
            "the model's own sample is too large for this machine (check its input shapes, and any --shape given)"
        raise UserError(f"profiling batch {batch} needs at least {needed / 2**30:.3g} GiB (its inputs "
                        f"{inputs / 2**30:.3g} GiB and its largest tensor), more than this machine's "
                        f"{total / 2**30:.3g} GiB: {fix}")


def _gpu_recorder(device: Device):
    """A CUPTI recorder on CUDA, or (None, why not); nothing to record on a CPU."""
    if not device.on_gpu:
        return None, ""
    from .cupti_recorder import CuptiRecorder, CuptiUnavailable  # CUPTI is loaded only for CUDA profiling

    try:
        return CuptiRecorder(), ""
    except CuptiUnavailable as exc:
        return None, str(exc)


def _options(settings: ProfileSettings, specs, batch: int, opt_level: str) -> ort.SessionOptions:
    so = session_options(None if settings.device.on_gpu else settings.device.number, opt_level)
    so.log_severity_level = FATAL_SEVERITY  # a failed run raises, and is said in one line: not logged in red too
    for dim in {s.batch_dim for s in specs if s.batch_dim}:
        so.add_free_dimension_override_by_name(dim, batch)
    return so


def _session(settings: ProfileSettings, specs, batch: int, opt_level: str, profile_prefix: str | None = None,
             optimised_path: str | None = None) -> ort.InferenceSession:
    device = settings.device
    so = _options(settings, specs, batch, opt_level)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimised_path:
        so.optimized_model_filepath = optimised_path
    try:
        return ort.InferenceSession(str(settings.model), so, providers=device.kind.providers(device.number))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        if optimised_path and "serialization failed" in str(exc).lower():  # writing its copy, not reading the model
            raise UserError(f"ONNX Runtime could not write the optimised model it profiles to "
                            f"{Path(optimised_path).parent} ({first_line(exc)}): free space there, raise the file "
                            "size limit (ulimit -f), or set TMPDIR to a folder with room") from None
        raise UserError(f"ONNX Runtime cannot load '{settings.model}' on {device}: {ort_reason(exc)}") from None


def _timed_runs(session: ort.InferenceSession, feeds: dict, count: int) -> list[int]:
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - start) // 1000)
    return times


def _profile_batch(settings: ProfileSettings, model: onnx.ModelProto, specs, batch: int, on_batch,
                   recorder) -> BatchProfile:
    """Profiled runs (recorded by CUPTI too, on a GPU), then, one session at a time, unprofiled runs.

    Sessions are not interleaved run by run: an idle ORT session's threads keep spinning after a run
    and would steal the cores of the next session (measured: GoogLeNet 2.6x slower interleaved).
    """
    feeds = settings.input_data.feeds(specs, batch)
    total = settings.warmup + settings.runs
    recording = None
    with tempfile.TemporaryDirectory(prefix="staronnx-profile-") as tmp:
        optimised_path = str(Path(tmp) / "optimised.onnx")
        session = _session(settings, specs, batch, settings.opt_level, str(Path(tmp) / "ort"), optimised_path)
        _run(settings, session, feeds, batch, 0, settings.warmup, total, on_batch)
        recording, note = _recorded(recorder, lambda: _run(settings, session, feeds, batch, settings.warmup, total,
                                                           total, on_batch))
        start_ns = session.get_profiling_start_time_ns()
        trace = load_trace(session.end_profiling())
        optimised = onnx.load(optimised_path, load_external_data=False)
    measured = list(range(settings.warmup, total))
    if recording is not None:
        gpu_times, note = _checked(trace, start_ns, recording, measured)
    else:
        gpu_times = None
    result = BatchProfile(batch, node_rows(model, optimised, trace, measured, str(settings.device), batch, gpu_times),
                          [trace.runs_us[r] for r in measured if r < len(trace.runs_us)], note=note)
    result.timing = main_timing(row["timing"] for row in result.rows)
    session = None  # its idle threads spin: the runs below would share the cores with them
    if gpu_times is not None and recording is not None:
        result.gpu = _gpu_stats(gpu_times, measured, recording.dropped)
    if settings.overhead:
        other = _session(settings, specs, batch, settings.opt_level)
        _timed_runs(other, feeds, settings.warmup)
        result.plain_run_us = _timed_runs(other, feeds, settings.runs)
        if result.gpu is not None:  # the same runs' GPU time with CUPTI alone, ORT's profiler off
            plain, _ = _recorded(recorder, lambda: _timed_runs(other, feeds, settings.runs))
            result.gpu.plain_kernel_us = plain.kernel_ns() / 1000 / settings.runs if plain else None
        del other
        full = _session(settings, specs, batch, "all")
        _timed_runs(full, feeds, settings.warmup)
        result.full_opt_run_us = _timed_runs(full, feeds, settings.runs)
        del full
    if not settings.device.on_gpu and has_control_flow(model):  # its body's node runs inflate its profiled time
        result.notes = correct_rows(result.rows, model, feeds, _options(settings, specs, batch, settings.opt_level),
                                    settings.runs, settings.warmup)
    return result


def _recorded(recorder, runs) -> tuple[GpuRecording | None, str]:
    """Do `runs()` under CUPTI when a recorder is given: (its recording, '') or (None, why it could not record)."""
    if recorder is None:
        runs()
        return None, ""
    from .cupti_recorder import CuptiUnavailable

    try:
        recorder.start()
    except CuptiUnavailable as exc:
        runs()
        return None, str(exc)
    try:
        runs()
    finally:
        recording = recorder.stop()
    return recording, ""


def _run(settings: ProfileSettings, session, feeds: dict, batch: int, first: int, stop: int, total: int,
         on_batch) -> None:
    for i in range(first, stop):
        try:
            session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001
            reason = ort_reason(exc)
            raise UserError(f"ONNX Runtime failed to run '{settings.model}' at batch {batch}: "
                            f"{reason}{baked_batch_hint(batch, reason)}") from None
        if on_batch:
            on_batch(batch, i + 1, total)


def _checked(trace: Trace, start_ns: int, recording: GpuRecording, measured: list[int]
             ) -> tuple[GpuTimes | None, str]:
    """CUPTI's records matched to ORT's nodes, or (None, why they cannot be trusted)."""
    cuda_kernels = any(k.provider != CPU_PROVIDER for k in trace.kernels if k.run in set(measured))
    if not cuda_kernels:
        return None, ""  # every node ran on the CPU provider: its host times are its times
    if not any(a.kind == "kernel" for a in recording.activities):
        return None, "CUPTI recorded no GPU kernel during the profiled runs"
    times = attribute_gpu_activity(trace, start_ns, recording)
    empty = [r for r in measured if r not in times.runs or times.runs[r].kernels == 0]
    if empty or times.attributed_fraction < MIN_ATTRIBUTED:
        return None, (f"CUPTI's records could not be matched to ORT's nodes ({100 * times.attributed_fraction:.0f} % "
                      f"of GPU time matched, {len(empty)} of {len(measured)} runs without kernels)")
    return times, ""


def _gpu_stats(times: GpuTimes, measured: list[int], dropped: int = 0) -> GpuStats:
    runs = [times.runs.get(r) for r in measured]
    return GpuStats(kernels_per_run=statistics.fmean(r.kernels if r else 0 for r in runs),
                    dropped_records=dropped,
                    kernel_us=[r.kernel_us if r else 0.0 for r in runs],
                    node_us=[r.node_us if r else 0.0 for r in runs],
                    outside_us=[r.outside_us if r else 0.0 for r in runs],
                    attributed_fraction=times.attributed_fraction)


def summary_stats(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean_us": round(float(arr.mean()), 1), "median_us": round(float(np.median(arr)), 1),
            "std_us": round(float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, 1), "runs": len(arr)}


def costs_meta(settings: ProfileSettings, result: ProfileResult) -> dict:
    """costs.meta.json: how the times were taken, and each batch size's end-to-end and GPU figures (whoever
    profiled: `profile`, `split` without --costs, `advise`)."""
    return {
        "model": str(settings.model), "model_sha256": modelio.sha256_of(settings.model),
        "device": str(settings.device), "opt_level": settings.opt_level, "runs": settings.runs,
        "warmup": settings.warmup, "input_data": settings.input_data.words(),
        "timing": sorted({r.timing for r in result.batches}),
        "gpu_clock": result.gpu_clock or None, "gpu_clock_note": result.note or None,
        "batches": {str(r.batch_size): {
            "timing": r.timing,
            "end_to_end_profiled": summary_stats(r.run_us),
            "end_to_end_plain": summary_stats(r.plain_run_us) if r.plain_run_us else None,
            "end_to_end_level_all": summary_stats(r.full_opt_run_us) if r.full_opt_run_us else None,
            "node_sum_us": round(r.node_sum_us, 1),
            "host_sum_us": round(sum(row["host_us"] for row in r.rows), 1),
            "gpu": _gpu_meta(r), "notes": r.notes,
        } for r in result.batches},
    }


def _gpu_meta(r: BatchProfile) -> dict | None:
    if r.gpu is None:
        return None
    g = r.gpu
    return {"kernels_per_run": round(g.kernels_per_run, 2),
            "kernel_us_per_run": summary_stats(g.kernel_us), "node_us_per_run": summary_stats(g.node_us),
            "outside_nodes_us_per_run": summary_stats(g.outside_us),
            "attributed_fraction": round(g.attributed_fraction, 4), "dropped_records": g.dropped_records,
            "kernel_us_per_run_cupti_alone": round(g.plain_kernel_us, 1) if g.plain_kernel_us else None,
            "profiler_on_over_cupti_alone": round(g.profiler_ratio, 4) if g.profiler_ratio else None}


def write_profile(path: Path, settings: ProfileSettings, result: ProfileResult) -> list[dict]:
    """The costs file of a profile and its meta beside it; the rows written."""
    rows = [row for r in result.batches for row in r.rows]
    write_costs(path, rows, costs_meta(settings, result))
    return rows
