"""Record what the GPU did, with NVIDIA's CUPTI (cupti-python), while ONNX Runtime runs a model.

Imported only when profiling on CUDA: machines without a GPU never load it. CUPTI's activity API buffers
records of kernels, memcpy and memset (GPU start and end) and of the runtime and driver API calls that
launched them (host start), all on CUPTI's clock; `gpu_times.attribute_gpu_activity` gives each to its ORT
node. Records are copied out of CUPTI's buffers inside the callback (the buffer is reused afterwards).

Where CUPTI cannot be used (cupti-python missing, built for another CUDA major than ONNX Runtime, a driver
too old: CUPTI_ERROR_NOT_INITIALIZED, another profiler holding CUPTI), `CuptiUnavailable` carries one line
saying why and what to do; `profile` then keeps ORT's host times and marks them as launch times. (Tracing,
unlike counter profiling, is allowed to non-root users since CUDA 10.2.)
"""

from __future__ import annotations

import importlib.metadata
import time

from ..errors import first_line, install_hint
from .gpu_times import ApiCall, GpuActivity, GpuRecording

BUFFER_BYTES = 8 << 20
_KIND_NAMES = ("CONCURRENT_KERNEL", "MEMCPY", "MEMSET", "RUNTIME", "DRIVER")
_INSTALL_HINT = install_hint("cuda13", "cuda12") + " (CUDA 13 or 12)"


class CuptiUnavailable(Exception):
    """CUPTI cannot record here; the message is one line naming why and the fix."""


def cupti_version() -> str:
    try:
        return importlib.metadata.version("cupti-python")
    except importlib.metadata.PackageNotFoundError:
        return ""


def _cuda_major_of_ort() -> str:
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return ""
    return str(getattr(build_and_package_info, "cuda_version", "") or "").split(".")[0]


def load_cupti():
    """The cupti module, or CuptiUnavailable saying why not."""
    version = cupti_version()
    if not version:
        raise CuptiUnavailable(f"cupti-python is not installed: {_INSTALL_HINT}")
    ort_major = _cuda_major_of_ort()
    if ort_major and version.split(".")[0] != ort_major:
        raise CuptiUnavailable(f"cupti-python {version} is for CUDA {version.split('.')[0]} but this ONNX Runtime "
                               f"is built for CUDA {ort_major}: pip install 'cupti-python=={ort_major}.*'")
    try:
        from cupti import cupti

        cupti.get_timestamp()  # libcupti loads on the binding's first call: a missing library or old driver fails here
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError (libcupti missing), anything its loader raises
        raise CuptiUnavailable(f"cupti-python {version} cannot load ({_cupti_error(exc)}): {_INSTALL_HINT}") from None
    return cupti


def _cupti_error(exc: BaseException) -> str:
    """CUPTI's own name for the failure (e.g. CUPTI_ERROR_NOT_INITIALIZED) where the binding gives a status."""
    status = getattr(exc, "status", None)
    if status is not None:
        try:
            from cupti import cupti

            return f"{cupti.Result(status).name}"
        except Exception:  # noqa: BLE001 - fall back to the message
            pass
    return first_line(exc)


def gpu_clock_status() -> str:
    """One line for `doctor`: whether `profile --device cuda` will time nodes on the GPU's own clock."""
    try:
        recorder = CuptiRecorder()
    except CuptiUnavailable as exc:
        return f"not available: {exc}; profile --device cuda would record host launch times"
    return f"{recorder.source}: profile --device cuda times each node on the GPU's own clock"


class _Sink:
    """CUPTI's callbacks are registered once per process; recordings take turns at receiving the records."""

    registered = False
    records: list | None = None
    api_names: dict = {}


class CuptiRecorder:
    """`with CuptiRecorder() as rec: ...runs...` then `rec.recording`: every GPU activity of the runs.

    Constructing it loads CUPTI and enables the activity kinds once, then disables them: a driver that refuses
    (permissions, another major) says so here, before any run is measured.
    """

    def __init__(self):
        self._cupti = load_cupti()
        self._offset_ns = 0
        self._kinds = [getattr(self._cupti.ActivityKind, name) for name in _KIND_NAMES]
        self.recording: GpuRecording | None = None
        self.source = f"cupti-python {cupti_version()}"
        self._register()
        self._enable()
        self._disable()

    def __enter__(self) -> CuptiRecorder:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        _Sink.records = []
        self._offset_ns = self._clock_offset_ns()
        try:
            self._enable()
        except CuptiUnavailable:
            _Sink.records = None
            raise

    def stop(self) -> GpuRecording:
        try:
            self._cupti.activity_flush_all(int(self._cupti.ActivityFlag.FLUSH_FORCED))
        finally:
            self._disable()
        raw, _Sink.records = _Sink.records or [], None
        calls = [ApiCall(c, start, self._api_name(kind, cbid)) for tag, c, start, kind, cbid, _ in raw if tag == "api"]
        activities = [GpuActivity(tag, c, start, end, name, size) for tag, c, start, end, name, size in raw
                      if tag != "api"]
        complete = [a for a in activities if 0 < a.start_ns <= a.end_ns]  # a forced flush may hand in partial ones
        self.recording = GpuRecording(calls, complete, self._offset_ns, self.source, len(activities) - len(complete))
        return self.recording

    def _enable(self) -> None:
        """Every kind on, or none: a kind left on after a failure would slow every later run of the process."""
        try:
            for kind in self._kinds:
                self._cupti.activity_enable(kind)
        except Exception as exc:  # noqa: BLE001 - cuptiError and whatever the binding raises
            self._disable()
            raise CuptiUnavailable(f"CUPTI refused to record ({_cupti_error(exc)}); another profiler (Nsight "
                                   "Systems, PyTorch's) may hold CUPTI in this process") from None

    def _disable(self) -> None:
        for kind in self._kinds:
            try:
                self._cupti.activity_disable(kind)
            except Exception:  # noqa: BLE001 - disabling what never got enabled
                pass

    def _clock_offset_ns(self) -> int:
        """CUPTI's clock minus the wall clock (ORT's profiler clock), from the tightest of a few brackets."""
        best: tuple[int, int] | None = None
        for _ in range(16):
            before = time.time_ns()
            stamp = self._cupti.get_timestamp()
            after = time.time_ns()
            if best is None or after - before < best[0]:
                best = (after - before, stamp - (before + after) // 2)
        assert best is not None  # 16 brackets were taken
        return best[1]

    def _api_name(self, kind: int, cbid: int) -> str:
        key = (kind, cbid)
        if key not in _Sink.api_names:
            cupti = self._cupti
            domain = (cupti.CallbackDomain.DRIVER_API if kind == cupti.ActivityKind.DRIVER
                      else cupti.CallbackDomain.RUNTIME_API)
            try:
                _Sink.api_names[key] = str(cupti.get_callback_name(domain, cbid))
            except Exception:  # noqa: BLE001 - a name is only a label
                _Sink.api_names[key] = f"cbid {cbid}"
        return _Sink.api_names[key]

    def _register(self) -> None:
        if _Sink.registered:
            return
        cupti = self._cupti
        kernel, memcpy, memset = (cupti.ActivityKind.CONCURRENT_KERNEL, cupti.ActivityKind.MEMCPY,
                                  cupti.ActivityKind.MEMSET)
        api_kinds = (cupti.ActivityKind.RUNTIME, cupti.ActivityKind.DRIVER)

        def copy_kind(record) -> str:
            try:
                return cupti.ActivityMemcpyKind(record.copy_kind).name
            except ValueError:
                return "memcpy"

        def buffer_requested():
            return BUFFER_BYTES, 0

        def buffer_completed(activities: list):
            sink = _Sink.records
            if sink is None:
                return  # records flushed after a recording ended
            for r in activities:
                if r.kind == kernel:
                    sink.append(("kernel", r.correlation_id, r.start, r.end, r.name, 0))
                elif r.kind == memcpy:
                    sink.append(("memcpy", r.correlation_id, r.start, r.end, copy_kind(r), r.bytes))
                elif r.kind == memset:
                    sink.append(("memset", r.correlation_id, r.start, r.end, "memset", r.bytes))
                elif r.kind in api_kinds:
                    sink.append(("api", r.correlation_id, r.start, int(r.kind), r.cbid, 0))

        cupti.activity_register_callbacks(buffer_requested, buffer_completed)
        _Sink.registered = True
