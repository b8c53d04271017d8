"""A Triton model repository for one ONNX model or a mix of them: per model, config.pbtxt (its own dynamic batcher)
and the Python backend model."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from .. import modelio

MODEL_NAME = "staronnx_model"  # the one model of a single-model sweep (a mix's models keep their names)
TRITON_TYPES = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.float16): "TYPE_FP16",
                np.dtype(np.float64): "TYPE_FP64", np.dtype(np.int64): "TYPE_INT64", np.dtype(np.int32): "TYPE_INT32",
                np.dtype(np.int8): "TYPE_INT8", np.dtype(np.uint8): "TYPE_UINT8", np.dtype(np.bool_): "TYPE_BOOL"}


def _tensor(name: str, dtype: np.dtype, dims) -> str:
    dims_text = ", ".join(str(d) for d in dims) or "1"
    return f'  {{\n    name: "{name}"\n    data_type: {TRITON_TYPES[np.dtype(dtype)]}\n    dims: [ {dims_text} ]\n  }}'


def _outputs(model: onnx.ModelProto) -> list[tuple[str, np.dtype, list[int]]]:
    out = []
    for value in model.graph.output:
        ttype = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in list(ttype.shape.dim)[1:]]
        out.append((value.name, np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)), dims))
    return out


@dataclass(frozen=True)
class ServedModel:
    """One model of a repository: Triton's name for it, its ONNX file, its batch size N."""

    name: str
    path: Path
    max_batch: int


def config_pbtxt(model: ServedModel, queue_delay_us: int, threads: int, cores: list[int]) -> str:
    """Triton's dynamic batcher configured like the compared batching: up to N queries per batch, preferred N,
    a batch leaves when N are there or its first query waited `queue_delay_us`."""
    onnx_model = modelio.load_model(model.path, with_weights=False)
    inputs = [_tensor(s.name, s.dtype, s.shape) for s in modelio.input_specs(onnx_model)]
    outputs = [_tensor(name, dtype, dims) for name, dtype, dims in _outputs(onnx_model)]
    params = {"onnx_model": str(model.path.resolve()), "threads": str(threads), "cores": ",".join(map(str, cores))}
    parameters = "\n".join(f'parameters: {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in params.items())
    return (f'name: "{model.name}"\nbackend: "python"\nmax_batch_size: {model.max_batch}\n'
            f"input [\n{','.join(inputs)}\n]\noutput [\n{','.join(outputs)}\n]\n"
            f"dynamic_batching {{\n  preferred_batch_size: [ {model.max_batch} ]\n"
            f"  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
            f"instance_group [ {{ count: 1 kind: KIND_CPU }} ]\n{parameters}\n")


def write_repository(root: Path, models: list[ServedModel], queue_delay_us: int, threads: int,
                     cores: list[int]) -> Path:
    """root/<name>/{config.pbtxt, 1/model.py} per model, each with its own batcher and one instance on the same
    cores (a mix shares them as on the other systems); the ONNX models stay where they are (absolute paths)."""
    if root.exists():
        shutil.rmtree(root)
    for model in models:
        version = root / model.name / "1"
        version.mkdir(parents=True)
        (root / model.name / "config.pbtxt").write_text(config_pbtxt(model, queue_delay_us, threads, cores))
        shutil.copy(Path(__file__).with_name("backend_model.py"), version / "model.py")
    return root
