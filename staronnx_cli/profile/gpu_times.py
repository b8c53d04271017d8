"""GPU time per ONNX Runtime node: CUPTI activity records matched to the node that launched them (pure).

On CUDA, ORT's profiler times each node on the host, and a node's host time is the time it took to
*launch* its kernels: the GPU runs them later, asynchronously. CUPTI records what the GPU did (kernels,
memcpy, memset, with the GPU's start and end) and the API call that launched each one (cudaLaunchKernel,
cuLaunchKernel, cudaMemcpyAsync ...), linked by a correlation id. The launch call runs on the host thread
inside the node that issued it, so:

    GPU activity --correlation--> its launch call's host start --inside--> one ORT node's host interval

Both sides are on one clock: CUPTI's timestamps (minus the measured offset `cupti_minus_wall_ns`) and ORT's
events (`profiling_start_ns` + ts) are wall-clock nanoseconds. Activities launched inside a run but outside
every node are the run's own copies (ORT copying the inputs in and the outputs out); they are reported per
run, not given to a node. A node's GPU time is the sum of its activities' durations.

Assumes ORT's sequential executor (nodes of one session run one after another on one host thread), which is
what `profile` uses.
"""

from __future__ import annotations

import bisect
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .trace import Trace

RECORDING_SCHEMA = 1
ACTIVITY_KINDS = ("kernel", "memcpy", "memset")
EDGE_SLACK_NS = 2000  # ORT truncates start and duration to microseconds: a node's end may read up to 2 us early


@dataclass(frozen=True)
class ApiCall:
    """A CUDA runtime or driver API call on the host (the launch of a GPU activity)."""

    correlation: int
    start_ns: int  # CUPTI clock
    name: str = ""


@dataclass(frozen=True)
class GpuActivity:
    """Work the GPU did: a kernel, a memcpy or a memset, on the GPU's clock as CUPTI reports it."""

    kind: str  # one of ACTIVITY_KINDS
    correlation: int
    start_ns: int
    end_ns: int
    name: str = ""  # the kernel's name, or the copy's direction ("HtoD", "DtoH", "DtoD" ...)
    bytes: int = 0

    @property
    def dur_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class GpuRecording:
    """What CUPTI recorded over some runs, with the offset of its clock from the wall clock."""

    api_calls: list[ApiCall]
    activities: list[GpuActivity]
    cupti_minus_wall_ns: int = 0
    source: str = ""  # e.g. "cupti-python 13.4.0"
    dropped: int = 0  # incomplete records left out (no timestamps: CUPTI could not collect them)

    def kernel_ns(self) -> int:
        return sum(a.dur_ns for a in self.activities if a.kind == "kernel")


@dataclass
class RunGpu:
    """One run's GPU work, as attributed."""

    kernels: int = 0
    kernels_in_nodes: int = 0  # of which launched by an ORT node
    kernel_us: float = 0.0  # every kernel launched inside the run (the GPU's compute time per run)
    node_us: float = 0.0  # every activity attributed to a node (kernels, and the nodes' own copies and memsets)
    outside_us: float = 0.0  # activities launched in the run but by no node: input and output copies


@dataclass
class GpuTimes:
    per_kernel: dict[str, dict[int, float]]  # ORT node (kernel) name -> run index -> GPU us
    runs: dict[int, RunGpu]  # run index -> totals, for every run that launched GPU work
    unmatched: int = 0  # activities with no launch record, or launched outside every run
    unmatched_us: float = 0.0
    activities: int = 0  # all activities considered
    notes: list[str] = field(default_factory=list)

    @property
    def attributed_fraction(self) -> float:
        """Share of the GPU time (all activities) that found its run: 1.0 when every activity was matched."""
        total = sum(r.node_us + r.outside_us for r in self.runs.values()) + self.unmatched_us
        return 1.0 if total == 0 else 1.0 - self.unmatched_us / total


def attribute_gpu_activity(trace: Trace, profiling_start_ns: int, recording: GpuRecording) -> GpuTimes:
    """Give each recorded GPU activity to the ORT node (and run) whose host interval holds its launch call."""
    launches: dict[int, int] = {}
    for call in recording.api_calls:  # a correlation id is one API call; keep the outermost if repeated
        wall = call.start_ns - recording.cupti_minus_wall_ns
        launches[call.correlation] = min(wall, launches.get(call.correlation, wall))
    nodes = sorted(trace.kernels, key=lambda k: k.ts_us)
    node_starts = [profiling_start_ns + k.ts_us * 1000 for k in nodes]
    runs = [(profiling_start_ns + s * 1000, profiling_start_ns + e * 1000) for s, e in trace.run_spans_us]
    run_starts = [s for s, _ in runs]
    per_kernel: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    per_run: dict[int, RunGpu] = defaultdict(RunGpu)
    result = GpuTimes({}, {})
    for activity in recording.activities:
        result.activities += 1
        dur_us = activity.dur_ns / 1000
        launch = launches.get(activity.correlation)
        run = _last_starting_by(run_starts, launch)
        if launch is None or run is None or launch > runs[run][1]:
            result.unmatched += 1
            result.unmatched_us += dur_us
            continue
        totals = per_run[run]
        if activity.kind == "kernel":
            totals.kernels += 1
            totals.kernel_us += dur_us
        i = _last_starting_by(node_starts, launch)
        if i is not None and nodes[i].run == run and launch <= node_starts[i] + nodes[i].dur_us * 1000 + EDGE_SLACK_NS:
            per_kernel[nodes[i].kernel][run] += dur_us
            totals.node_us += dur_us
            totals.kernels_in_nodes += activity.kind == "kernel"
        else:
            totals.outside_us += dur_us
    result.per_kernel = {k: dict(v) for k, v in per_kernel.items()}
    result.runs = dict(sorted(per_run.items()))
    if result.unmatched:
        result.notes.append(f"{result.unmatched} of {result.activities} GPU activities "
                            f"({result.unmatched_us:.0f} us) had no launch inside a profiled run")
    return result


def _last_starting_by(starts: list[int], t: int | None) -> int | None:
    """Index of the last interval (sorted by start) that starts at or before t."""
    if t is None:
        return None
    i = bisect.bisect_right(starts, t) - 1
    return i if i >= 0 else None


# -- the recording on disk: compact columns, gzipped JSON ---------------------------------------------------------

def write_recording(recording: GpuRecording, path: str | Path) -> None:
    base = min([c.start_ns for c in recording.api_calls] + [a.start_ns for a in recording.activities], default=0)
    names = sorted({c.name for c in recording.api_calls} | {a.name for a in recording.activities})
    index = {n: i for i, n in enumerate(names)}
    data = {
        "schema": RECORDING_SCHEMA, "source": recording.source, "dropped": recording.dropped,
        "cupti_minus_wall_ns": recording.cupti_minus_wall_ns, "base_ns": base, "names": names,
        "api": {"correlation": [c.correlation for c in recording.api_calls],
                "start_ns": [c.start_ns - base for c in recording.api_calls],
                "name": [index[c.name] for c in recording.api_calls]},
        "activity": {"kind": [ACTIVITY_KINDS.index(a.kind) for a in recording.activities],
                     "correlation": [a.correlation for a in recording.activities],
                     "start_ns": [a.start_ns - base for a in recording.activities],
                     "dur_ns": [a.dur_ns for a in recording.activities],
                     "name": [index[a.name] for a in recording.activities],
                     "bytes": [a.bytes for a in recording.activities]},
    }
    Path(path).write_bytes(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0))


def read_recording(path: str | Path) -> GpuRecording:
    try:
        data = json.loads(gzip.decompress(Path(path).read_bytes()))
        if data.get("schema") != RECORDING_SCHEMA:
            raise ValueError(f"schema {data.get('schema')}, this staronnx reads {RECORDING_SCHEMA}")
        base, names, api, act = data["base_ns"], data["names"], data["api"], data["activity"]
        calls = [ApiCall(c, base + s, names[n])
                 for c, s, n in zip(api["correlation"], api["start_ns"], api["name"])]
        columns = zip(act["kind"], act["correlation"], act["start_ns"], act["dur_ns"], act["name"], act["bytes"])
        activities = [GpuActivity(ACTIVITY_KINDS[k], c, base + s, base + s + d, names[n], b)
                      for k, c, s, d, n, b in columns]
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:
        raise UserError(f"cannot read GPU recording '{path}': {exc}") from None
    return GpuRecording(calls, activities, data["cupti_minus_wall_ns"], data.get("source", ""), data.get("dropped", 0))
