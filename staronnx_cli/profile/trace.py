"""ONNX Runtime profile JSON -> kernel timings per run (pure: no ORT import, golden-file tested).

The trace is a list of Chrome trace events. Kernel executions are `cat == "Node"` events named
`<node>_kernel_time`; each `model_run` event (cat "Session") spans one `InferenceSession.run`, and a
kernel belongs to the run whose span contains it. Times are microseconds from the session's profiling
start (`InferenceSession.get_profiling_start_time_ns()`), which is what lets GPU activity recorded on
the same clock be matched to the node that launched it (see gpu_times.py).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..inputfile import MAX_RESULT_BYTES, checked_input

KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class KernelEvent:
    run: int  # index of the model_run this kernel belongs to (0 = first run in the file)
    kernel: str  # the node name in the graph ORT executed (may be a fused node)
    op_type: str
    provider: str
    dur_us: int  # host time of the kernel call (on CUDA: the launch, not the GPU's work)
    output_bytes: int
    ts_us: int = 0  # start, from the profiling start


@dataclass(frozen=True)
class Trace:
    run_spans_us: list[tuple[int, int]]  # (start, end) of each model_run, in order
    kernels: list[KernelEvent]

    @property
    def runs_us(self) -> list[int]:
        """Duration of each model_run, in order."""
        return [end - start for start, end in self.run_spans_us]


def load_trace(path: str | Path) -> Trace:
    """Read ORT's profile JSON (or a gzipped copy of one)."""
    path = checked_input(path, "ONNX Runtime profile", "record one with 'staronnx profile'", MAX_RESULT_BYTES)
    try:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        events = json.loads(text)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read ONNX Runtime profile '{path}': {exc}") from None
    return parse_trace(events)


def parse_trace(events: list[dict]) -> Trace:
    if not isinstance(events, list):
        raise UserError("not an ONNX Runtime profile: expected a JSON list of trace events")
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    kernels = []
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        run = _run_containing(runs, e["ts"])
        if run is None:
            continue  # a kernel outside any run (session initialisation): not an inference
        args = e.get("args", {})
        kernels.append(KernelEvent(
            run=run, kernel=name[: -len(KERNEL_SUFFIX)], op_type=args.get("op_name", ""),
            provider=args.get("provider", ""), dur_us=int(e["dur"]),
            output_bytes=int(args.get("output_size", 0) or 0), ts_us=int(e["ts"])))
    return Trace(run_spans_us=runs, kernels=kernels)


def _run_containing(runs: list[tuple[int, int]], ts: int) -> int | None:
    for i, (start, end) in enumerate(runs):
        if start <= ts <= end:
            return i
    return None
