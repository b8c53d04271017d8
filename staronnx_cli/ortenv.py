"""ONNX Runtime import, quiet logging, and the truth about CUDA.

ORT's `get_available_providers()` lists CUDA for every onnxruntime-gpu install, GPU or not, and a
session asked for CUDA silently falls back to CPU. The only honest test is to create a session and read
`get_providers()`. ORT also prints C++ error lines when CUDA libraries are missing: we raise its log
severity so the terminal stays clean and say it once in our own words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import onnxruntime as ort

from .errors import first_line

ERROR_SEVERITY = 3  # 0 verbose .. 4 fatal; 3 hides warnings
FATAL_SEVERITY = 4  # used while probing CUDA, whose missing libraries are logged as errors
ort.set_default_logger_severity(ERROR_SEVERITY)


@dataclass(frozen=True)
class CudaStatus:
    usable: bool
    reason: str  # one line: why CUDA is or is not usable


def session_options(threads: int | None = None, opt_level: str = "all") -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = ERROR_SEVERITY
    so.graph_optimization_level = OPT_LEVELS[opt_level]
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return so


OPT_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@functools.lru_cache(maxsize=1)
def cuda_status() -> CudaStatus:
    """Whether a CUDA session really runs on the GPU (cached: creating a session costs ~100 ms)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return CudaStatus(False, f"this ONNX Runtime build ({ort.__version__}) has no CUDA provider")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = session_options()
    options.log_severity_level = FATAL_SEVERITY
    ort.set_default_logger_severity(FATAL_SEVERITY)  # the provider bridge logs its dlopen failure here
    try:
        sess = ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"; we report it
        return CudaStatus(False, f"CUDA session failed: {first_line(exc, 160)}")
    finally:
        ort.set_default_logger_severity(ERROR_SEVERITY)
    if "CUDAExecutionProvider" not in sess.get_providers():
        return CudaStatus(False, "no CUDA device or CUDA libraries could not load "
                                 "(ONNX Runtime fell back to CPU)")
    return CudaStatus(True, "CUDA execution provider loads and runs")


def gpu_count(cuda_usable: bool) -> int:
    """The GPUs `--workers auto` and doctor lay workers on: CuPy's count, 1 where ONNX Runtime runs CUDA but CuPy
    cannot count, 0 without CUDA."""
    if not cuda_usable:
        return 0
    try:
        import cupy  # noqa: PLC0415

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - ORT runs on CUDA, count unknown without CuPy
        return 1
