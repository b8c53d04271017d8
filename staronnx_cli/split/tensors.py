"""Every tensor's dtype, shape and batch axis: shape inference first, a probe run for what it leaves unknown.

Shapes are inferred at batch 1 and batch 2: the axis whose size changes is the batch axis, so a tensor's
bytes at batch N are exact (`bytes_per_sample * N + fixed_bytes`). Where inference leaves a size unknown
(Reshape targets computed at run time, as in ViT and NFNet exports), the model is run once at each of the
two batch sizes with those tensors added as outputs. No edge is ever weighed zero silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from .. import modelio
from ..errors import UserError, ort_reason
from ..inputdata import RANDOM, InputData

BATCH = modelio.PART_BATCH_DIM


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple  # ints, with "batch" at the batch axis (if any), "batch*K" or None (see _axis_name)
    bytes_per_sample: int  # bytes that scale with the batch
    fixed_bytes: int  # bytes that do not (a tensor without a batch axis)

    def bytes_at(self, batch: int) -> int:
        return self.bytes_per_sample * batch + self.fixed_bytes

    @property
    def onnx_type(self) -> int:
        return helper.np_dtype_to_tensor_dtype(np.dtype(self.dtype))


def _infer(model: onnx.ModelProto, batch: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(modelio.shape_skeleton(model, batch), data_prop=True)
    except Exception:  # noqa: BLE001 - the probe run covers whatever inference cannot
        return {}
    known = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        ttype = value.type.tensor_type
        dims = ttype.shape.dim
        if ttype.elem_type and ttype.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
            known[value.name] = (dtype, tuple(d.dim_value for d in dims))
    return known


def _probe(model_path: Path, model: onnx.ModelProto, names: list[str], batch: int, data: InputData) -> dict:
    """Run the model with `names` as extra outputs (ORT infers their types) and read their shapes."""
    import onnxruntime as ort

    from ..ortenv import session_options

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    specs = modelio.input_specs(model)
    so = session_options(opt_level="disabled")
    try:
        session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outputs = session.run(names, data.feeds(specs, batch))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot measure tensor sizes of '{model_path}' by running it: "
                        f"{ort_reason(exc)}") from None
    return {name: (np.asarray(array).dtype.name, np.asarray(array).shape) for name, array in zip(names, outputs)}


def _axis_name(at_1: int, at_2: int) -> int | str | None:
    """An axis' size, or its name where the batch changes it: "batch", "batch*K" (K rows per sample: [batch*seq,
    hidden] is not [batch, hidden]), or None (dynamic) for a size that does not grow as K x batch."""
    if at_1 == at_2:
        return at_1
    return (BATCH if at_1 == 1 else f"{BATCH}*{at_1}") if at_2 == 2 * at_1 else None


def tensor_table(model: onnx.ModelProto, model_path: Path, wanted: set[str], data: InputData = RANDOM
                 ) -> dict[str, TensorInfo]:
    """TensorInfo for every name in `wanted` (tensors produced by nodes or fed as model inputs)."""
    one, two = _infer(model, 1), _infer(model, 2)
    unknown = sorted(n for n in wanted if n not in one or n not in two)
    if unknown:
        one.update(_probe(model_path, model, unknown, 1, data))  # shapes that follow the data: the sweep's data
        two.update(_probe(model_path, model, unknown, 2, data))
    table = {}
    for name in wanted:
        (dtype, s1), (_, s2) = one[name], two[name]
        itemsize = np.dtype(dtype).itemsize
        if any(a != b for a, b in zip(s1, s2)):
            shape = tuple(_axis_name(a, b) for a, b in zip(s1, s2))
            table[name] = TensorInfo(name, dtype, shape, int(np.prod(s1)) * itemsize, 0)
        else:
            table[name] = TensorInfo(name, dtype, tuple(s1), 0, int(np.prod(s1)) * itemsize)
    return table
