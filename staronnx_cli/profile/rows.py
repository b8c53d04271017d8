"""Profiled kernels -> one costs row per original node (pure: traces and graphs in, rows out).

Each ORT kernel has a host time per run (ORT's profiler) and, on a GPU with CUPTI, a GPU time per run
(gpu_times.py). A node's time per run is its share of its kernels' times (attribution.py); `mean_us`,
`median_us` and `std_us` are over the measured runs, in the row's `timing`:

- `gpu`: the GPU's own time (CUPTI) of the kernels, copies and memsets the node launched;
- `cpu`: host time of a kernel that ran on the CPU (a CPU profile, or a node ORT left on the CPU provider
  inside a CUDA session): there, host time is compute time;
- `host-launch`: host time of a CUDA kernel without CUPTI: the time to *launch* it, not the GPU's work.

`host_us` keeps the host time in every case.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

import onnx

from .. import modelio
from ..kinds import key_on_gpu
from .attribution import attribute
from .costs import UNKNOWN
from .gpu_times import GpuTimes
from .trace import Trace

CPU_PROVIDER = "CPUExecutionProvider"


def _stats(samples: list[float]) -> dict:
    return {"mean_us": round(statistics.fmean(samples), 3), "median_us": round(statistics.median(samples), 3),
            "std_us": round(statistics.stdev(samples), 3) if len(samples) > 1 else 0.0}


def node_rows(model: onnx.ModelProto, optimised: onnx.ModelProto, trace: Trace, measured: list[int], device: str,
              batch: int, gpu: GpuTimes | None = None) -> list[dict]:
    """Rows of costs.csv for one batch size. `gpu` given: CUDA kernels are timed by the GPU's clock."""
    host: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(trace.run_spans_us))
    provider: dict[str, str] = {}
    out_bytes: dict[str, int] = {}
    for k in trace.kernels:
        host[k.kernel][k.run] += k.dur_us
        provider[k.kernel] = k.provider
        out_bytes[k.kernel] = k.output_bytes
    on_device = key_on_gpu(device)

    def kernel_timing(kernel: str) -> str:
        if not on_device or provider.get(kernel) == CPU_PROVIDER:
            return "cpu"
        return "gpu" if gpu is not None else "host-launch"

    def kernel_us(kernel: str, run: int) -> float:
        if gpu is not None and kernel_timing(kernel) == "gpu":
            return gpu.per_kernel.get(kernel, {}).get(run, 0.0)
        return host[kernel][run] if kernel in host else 0.0

    default_timing = "cpu" if not on_device else ("gpu" if gpu is not None else "host-launch")
    tensor_bytes = modelio.tensor_bytes_by_node(model, batch)
    rows = []
    for a in attribute(model, optimised):
        kernels = [k for k in a.kernels if k in host]
        timings = {kernel_timing(k) for k in kernels}
        timing = default_timing if not timings else ("cpu" if timings == {"cpu"} else timings.difference({"cpu"}).pop())
        samples = [a.share * sum(kernel_us(k, r) for k in kernels) for r in measured]
        host_samples = [a.share * sum(host[k][r] for k in kernels) for r in measured]
        rows.append({
            "node": a.node, "op_type": a.op_type, "device": device, "batch_size": batch, "runs": len(samples),
            **_stats(samples), "output_bytes": tensor_bytes.get(a.node, out_bytes.get(a.node, UNKNOWN)),
            "how": a.how, "share": round(a.share, 6), "kernels": " ".join(a.kernels),
            "host_us": round(statistics.fmean(host_samples), 3), "timing": timing,
        })
    return rows
