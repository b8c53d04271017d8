"""`staronnx doctor`: what this machine offers, and whether CUDA really works."""

from __future__ import annotations

import platform

from rich.markup import escape

from ..errors import first_line, install_hint
from .common import console, handle_errors


def cupy_status() -> str:
    try:
        import cupy  # noqa: PLC0415 - optional GPU extra
    except ImportError:
        return f"not installed (GPU machines: {escape(install_hint('cuda13', 'cuda12'))}, see docs/gpu.md)"
    try:
        return f"{cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} device(s)"
    except Exception as exc:  # noqa: BLE001 - no driver / no device
        return f"{cupy.__version__}, no usable device ({first_line(exc, 80)})"


def gpu_profiling_status(cuda_usable: bool) -> str:
    if not cuda_usable:
        return "no CUDA: nothing to profile on a GPU"
    from ..profile.cupti_recorder import gpu_clock_status  # CUPTI is loaded only where CUDA works

    return gpu_clock_status()


@handle_errors
def doctor():
    """Python, ONNX Runtime, CUDA (tested for real), CuPy, CPU, NUMA, and the `--workers auto` layout."""
    import onnxruntime as ort
    from rich.table import Table

    from .. import __version__
    from ..machine import auto_worker_layout, machine_info
    from ..ortenv import cuda_status, gpu_count

    info = machine_info()
    cuda = cuda_status()
    gpus = gpu_count(cuda.usable)
    table = Table(title="staronnx doctor", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("staronnx", __version__)
    table.add_row("Python", f"{platform.python_version()} ({platform.machine()}, {platform.system()})")
    table.add_row("ONNX Runtime", f"{ort.__version__}, build device {ort.get_device()}, "
                                  f"providers listed: {', '.join(ort.get_available_providers())}")
    table.add_row("CUDA", ("usable: " if cuda.usable else "not usable: ") + cuda.reason)
    table.add_row("CuPy", cupy_status())
    table.add_row("GPU profiling", gpu_profiling_status(cuda.usable))
    from ..runtime import core, hotwait

    why = core.unavailable()
    table.add_row("Hot path", "native core (runtime/_core.c over ONNX Runtime's C API): points on CPU workers run in "
                  "C" if not why else f"Python scheduler: {why}")
    table.add_row("Waits", hotwait.status())
    table.add_row("CPU", info.cpu_model)
    table.add_row("cores (usable)", str(info.cores))
    table.add_row("NUMA nodes", "; ".join(f"node {i}: {len(c)} cores ({c[0]}-{c[-1]})"
                                          for i, c in enumerate(info.numa_nodes)))
    table.add_row("--workers auto", auto_worker_layout(info.numa_nodes, gpus))
    console.print(table)
    if not cuda.usable:
        console.print("No CUDA device: staronnx will use CPU workers only.")
