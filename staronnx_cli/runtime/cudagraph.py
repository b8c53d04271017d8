"""CUDA graphs for the GPU worker: whether ONNX Runtime can capture a part at a batch size, and a captured part
with its device buffers bound for good. Captures are serialised in the process (CAPTURE_LOCK): on an H100,
captures that overlapped other GPU work failed with CUDA errors 900/901."""

from __future__ import annotations

import threading

import numpy as np

from .. import modelio

CONTROL_FLOW = {"If", "Loop", "Scan"}
AGREEMENT = 1e-2  # a graph's output may differ from the plain session's by this fraction of the output's magnitude
CAPTURE_LOCK = threading.RLock()  # held while a GPU worker is prepared: a capture never overlaps other GPU work


def cuda_graph_eligible(model, fixed_batch: int | None) -> tuple[bool, str]:
    """Whether ONNX Runtime can capture this part as a CUDA graph at this batch size, or why not.

    ORT's CUDA graphs need shapes that never change between runs (a fixed batch size, every other input
    dimension static) and no control flow (If, Loop, Scan). That every node runs on the CUDA provider is known
    only once the session exists: a session that cannot capture falls back to the plain one.
    """
    if fixed_batch is None:
        return False, "batch sizes vary (dynamic batching)"
    ops = sorted({n.op_type for n in model.graph.node} & CONTROL_FLOW)
    if ops:
        return False, f"control flow ({', '.join(ops)})"
    initializers = {i.name for i in model.graph.initializer}
    batch = set(modelio.batch_dims(model))  # fixed at `fixed_batch` by the session, on whichever axis
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        symbolic = [d.dim_param or "?" for d in dims[1:] if not d.HasField("dim_value") and d.dim_param not in batch]
        if symbolic:
            return False, f"input {value.name} has a dynamic dimension ({symbolic[0]})"
    return True, ""


class GraphPart:
    """A part captured as a CUDA graph: its session, with device buffers bound to it for good (a replay reads
    and writes the same addresses): a batch's inputs are copied into them, its outputs copied out of them."""

    def __init__(self, ort, session, device_id: int, inputs: dict[str, tuple], outputs: dict[str, tuple]):
        def buffer(shape, dtype):
            return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.dtype(dtype).type, "cuda", device_id)

        self.session = session
        self.inputs = {name: buffer(*spec) for name, spec in inputs.items()}
        self.outputs = {name: buffer(*spec) for name, spec in outputs.items()}
        self.binding = session.io_binding()
        for name, value in self.inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for name, value in self.outputs.items():
            self.binding.bind_ortvalue_output(name, value)


def outputs_differ(got, expected, name: str) -> str:
    """'' when a graph's output agrees with the plain session's, else what differs (for the warning line).

    The tolerance scales with the output's magnitude: two sessions may pick different convolution algorithms
    (TF32, exhaustive search), so values near zero differ by more than any fixed relative tolerance allows, while
    a replay that read stale inputs differs by a large share of the output itself."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"output {name} has shape {got.shape}, the plain session's {expected.shape}"
    if not (np.isfinite(got).all() and np.isfinite(expected).all()):
        odd = ~np.isfinite(expected)
        if not (np.array_equal(~np.isfinite(got), odd) and np.array_equal(got[odd], expected[odd], equal_nan=True)):
            return f"output {name} has non-finite values where the plain session's has others"
        got, expected = got[~odd], expected[~odd]
    if expected.size == 0:
        return ""
    scale = float(np.abs(expected).max())
    allowed = AGREEMENT * scale + 1e-6
    worst = float(np.abs(got - expected).max())
    if worst <= allowed:
        return ""
    return (f"output {name} differs from the plain session's by up to {worst:.3g} "
            f"(allowed {allowed:.3g}: {AGREEMENT:g} of its largest value {scale:.3g})")
