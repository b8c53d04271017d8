"""Run a model under ONNX Runtime's profiler and turn the trace into per-node costs of the original graph."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .. import modelio
from ..devices import Device
from ..errors import UserError
from ..ortenv import cuda_status, providers_for, session_options
from .attribution import attribute
from .trace import load_trace


@dataclass
class ProfileSettings:
    model: Path
    device: Device
    batch_sizes: list[int]
    runs: int = 20
    warmup: int = 3
    opt_level: str = "basic"
    overhead: bool = True  # also time runs without the profiler, and at the full optimisation level


@dataclass
class BatchProfile:
    batch_size: int
    rows: list[dict]
    run_us: list[int]  # end-to-end time of each measured (profiled) run
    plain_run_us: list[int] = field(default_factory=list)  # same level, profiler off
    full_opt_run_us: list[int] = field(default_factory=list)  # level "all", profiler off

    @property
    def node_sum_us(self) -> float:
        return sum(r["mean_us"] for r in self.rows)

    @property
    def end_to_end_us(self) -> float:
        return statistics.fmean(self.run_us)


def check_settings(settings: ProfileSettings) -> None:
    if settings.runs < 1:
        raise UserError(f"--runs {settings.runs}: at least one measured run is needed, e.g. --runs 20")
    if settings.warmup < 0:
        raise UserError(f"--warmup {settings.warmup}: warm-up runs cannot be negative")
    if not settings.batch_sizes or any(b < 1 for b in settings.batch_sizes):
        raise UserError(f"--batch {settings.batch_sizes}: batch sizes must be positive integers, e.g. --batch 1,8")
    if settings.device.kind == "cuda":
        status = cuda_status()
        if not status.usable:
            raise UserError(f"--device {settings.device}: CUDA is not usable here ({status.reason}); "
                            "profile on the CPU with --device cpu")


def profile_model(settings: ProfileSettings, on_batch=None) -> list[BatchProfile]:
    """Profile every batch size; `on_batch(done_runs, total_runs)` reports progress."""
    check_settings(settings)
    model = modelio.load_model(settings.model)
    specs = modelio.input_specs(model)
    results = []
    for batch in settings.batch_sizes:
        results.append(_profile_batch(settings, model, specs, batch, on_batch))
    return results


def _session(settings: ProfileSettings, specs, batch: int, opt_level: str, profile_prefix: str | None = None,
             optimised_path: str | None = None) -> ort.InferenceSession:
    device = settings.device
    so = session_options(device.number if device.kind == "cpu" else None, opt_level)
    for dim in {s.batch_dim for s in specs if s.batch_dim}:
        so.add_free_dimension_override_by_name(dim, batch)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimised_path:
        so.optimized_model_filepath = optimised_path
    try:
        return ort.InferenceSession(str(settings.model), so, providers=providers_for(device.kind, device.number))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        raise UserError(f"ONNX Runtime cannot load '{settings.model}' on {device}: "
                        f"{str(exc).splitlines()[0][:200]}") from None


def _timed_runs(session: ort.InferenceSession, feeds: dict, count: int) -> list[int]:
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - start) // 1000)
    return times


def _profile_batch(settings: ProfileSettings, model: onnx.ModelProto, specs, batch: int, on_batch) -> BatchProfile:
    """Profiled runs, then (one session at a time) unprofiled runs at the same level and at level all.

    Sessions are not interleaved run by run: an idle ORT session's threads keep spinning after a run
    and would steal the cores of the next session (measured: GoogLeNet 2.6x slower interleaved).
    """
    feeds = modelio.random_inputs(specs, batch)
    total = settings.warmup + settings.runs
    with tempfile.TemporaryDirectory(prefix="staronnx-profile-") as tmp:
        optimised_path = str(Path(tmp) / "optimised.onnx")
        session = _session(settings, specs, batch, settings.opt_level, str(Path(tmp) / "ort"), optimised_path)
        for i in range(total):
            try:
                session.run(None, feeds)
            except Exception as exc:  # noqa: BLE001
                raise UserError(f"ONNX Runtime failed to run '{settings.model}' at batch {batch}: "
                                f"{str(exc).splitlines()[0][:200]}") from None
            if on_batch:
                on_batch(batch, i + 1, total)
        trace = load_trace(session.end_profiling())
        optimised = onnx.load(optimised_path, load_external_data=False)
    measured = set(range(settings.warmup, total))
    per_kernel: dict[str, list[int]] = defaultdict(lambda: [0] * total)
    ops: dict[str, str] = {}
    out_bytes: dict[str, int] = {}
    for k in trace.kernels:
        per_kernel[k.kernel][k.run] += k.dur_us
        ops[k.kernel] = k.op_type
        out_bytes[k.kernel] = k.output_bytes
    tensor_bytes = modelio.tensor_bytes_by_node(model, batch)
    rows = []
    for a in attribute(model, optimised):
        samples = [a.share * sum(per_kernel[k][r] for k in a.kernels if k in per_kernel) for r in sorted(measured)]
        rows.append({
            "node": a.node, "op_type": a.op_type, "device": str(settings.device), "batch_size": batch,
            "runs": len(samples), "mean_us": round(statistics.fmean(samples), 3),
            "median_us": round(statistics.median(samples), 3),
            "std_us": round(statistics.stdev(samples), 3) if len(samples) > 1 else 0.0,
            "output_bytes": tensor_bytes.get(a.node, out_bytes.get(a.node, -1)),
            "how": a.how, "share": round(a.share, 6), "kernels": " ".join(a.kernels),
        })
    run_us = [trace.runs_us[r] for r in sorted(measured) if r < len(trace.runs_us)]
    plain_us, full_us = [], []
    if settings.overhead:
        for level, times in ((settings.opt_level, plain_us), ("all", full_us)):
            other = _session(settings, specs, batch, level)
            _timed_runs(other, feeds, settings.warmup)
            times.extend(_timed_runs(other, feeds, settings.runs))
            del other
    return BatchProfile(batch, rows, run_us, plain_us, full_us)


def summary_stats(values: list[int]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean_us": round(float(arr.mean()), 1), "median_us": round(float(np.median(arr)), 1),
            "std_us": round(float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, 1), "runs": len(arr)}
