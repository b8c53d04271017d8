"""The GPU worker: ONNX Runtime's CUDA execution provider driven through I/O binding.

Why this shape (ONNX Runtime's I/O binding and CuPy's stream documentation):
- inputs and outputs stay on the device between parts that run on the same GPU (no round trip per part);
- host<->device copies go through pinned host buffers on a copy stream of their own, so one batch's copies
  do not queue behind another batch's kernels on ORT's compute stream;
- pinned buffers are recycled by (shape, dtype) and device buffers come from CuPy's caching pool, so a
  steady stream of batches allocates nothing after the first few.

- the model's inputs are born pinned (`PinnedInputs`, copied once when the worker is prepared): a batch's
  upload is one DMA, with no host-side copy on the hot path;
- where a part's shapes are static at the batch size, it also runs as a CUDA graph (ORT's `enable_cuda_graph`,
  one session per part and batch size; on an H100 that took GoogLeNet at batch 1 from 1.26 to 0.87 ms):
  captured while the worker is prepared, one capture at a time in the process, kept only if its outputs
  equal the plain session's.

Imported only when a CUDA worker is asked for: CuPy is the optional `cuda12`/`cuda13` extra. The CUDA calls
ran on an H100 (before pinned inputs); pinned buffers are in pinned.py, CUDA graphs in cudagraph.py, and their
bookkeeping, like `DeviceTensor`'s, is tested without a GPU.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, first_line, install_hint
from .cudagraph import CAPTURE_LOCK, GraphPart, cuda_graph_eligible, outputs_differ
from .pinned import Pinned, PinnedInputs, PinnedPool, cupy_pinned_allocator
from .transfer import DEFAULT_LINK, Link, fit_link


class DeviceTensor:
    """A tensor that lives on a GPU: a CuPy array (which keeps whatever owns its memory alive)."""

    def __init__(self, array, device_id: int):
        self.array, self.device_id = array, device_id

    @property
    def memory_node(self) -> str:
        return f"cuda:{self.device_id}"


def import_cupy():
    try:
        import cupy
    except ImportError:
        raise UserError(f"a CUDA worker needs CuPy: {install_hint('cuda13', 'cuda12')} (CUDA 13 or 12 driver; "
                        "docs/gpu.md)") from None
    return cupy


class Prefetched:
    """Copies of one task's host inputs issued on the copy stream, between two CUDA events."""

    def __init__(self, arrays: dict, started, done, issued_s: float, staging: list):
        self.arrays, self.started, self.done, self.issued_s, self.staging = arrays, started, done, issued_s, staging


class CudaSessions:
    """One GPU worker's sessions (one per part) and its transfers. Used from the worker's own thread only,
    except `to_host`, which a CPU worker calls to fetch a tensor this GPU produced."""

    def __init__(self, device_id: int, part_files: list[Path], session_factory, warm_inputs: dict[str, np.ndarray],
                 warmup_runs: int, graph_factory=None, fixed_batch: int | None = None, cancelled=lambda: False):
        import onnxruntime as ort

        self.cupy = import_cupy()
        self.ort = ort
        self.device_id = device_id
        with self.cupy.cuda.Device(device_id):
            self.copy_stream = self.cupy.cuda.Stream(non_blocking=True)  # prefetches and this worker's results
            self.bind_stream = self.cupy.cuda.Stream(non_blocking=True)  # inputs into a graph's bound buffers
            self.fetch_stream = self.cupy.cuda.Stream(non_blocking=True)  # CPU workers fetching tensors from here
        self.fetch_lock = threading.Lock()
        self.pinned = PinnedPool(cupy_pinned_allocator(self.cupy))
        self.inputs = PinnedInputs(warm_inputs, cupy_pinned_allocator(self.cupy))
        self.sessions = [session_factory(path) for path in part_files]
        for path, session in zip(part_files, self.sessions):
            if "CUDAExecutionProvider" not in session.get_providers():
                raise UserError(f"ONNX Runtime could not put {path.name} on cuda:{device_id} (it fell back to CPU); "
                                "check 'staronnx doctor'")
        self.input_names = [[i.name for i in s.get_inputs()] for s in self.sessions]
        self.output_names = [[o.name for o in s.get_outputs()] for s in self.sessions]
        self.graphs: dict[int, GraphPart] = {}
        self.graph_notes: list[str] = []  # per part: captured, or why not
        self.graph_rejections: list[str] = []  # per part whose capture failed or disagreed: said as a warning
        warm: dict = dict(warm_inputs)
        for part, session in enumerate(self.sessions):
            feeds = {i.name: warm[i.name] for i in session.get_inputs()}
            for _ in range(max(1, warmup_runs)):
                outputs = self.run(part, feeds, set())
            if graph_factory is not None:
                if cancelled():  # Ctrl-C while the workers prepare: no more captures
                    raise KeyboardInterrupt
                self._capture(part, part_files[part], graph_factory, fixed_batch, feeds, outputs)
            warm.update(outputs)
        try:  # optional: a worker whose copies cannot be timed predicts with the default link, and says so
            self.link = self.measure_link(sum(v.nbytes for v in warm_inputs.values()))
        except Exception as exc:  # noqa: BLE001
            self.link = DEFAULT_LINK
            self.graph_notes.append(f"host->device link not measured ({first_line(exc, 120)}): dmda assumes "
                                    f"{DEFAULT_LINK.bandwidth_Bps / 1e9:g} GB/s")

    # -- CUDA graphs ------------------------------------------------------------------------------------
    def _capture(self, part: int, path: Path, graph_factory, fixed_batch, feeds: dict, expected: dict) -> None:
        """Capture the part as a CUDA graph (its shapes from the plain session's warm-up) and keep it only if
        its outputs equal the plain session's; any failure leaves the plain session, saying why."""
        from .. import modelio

        ok, why = cuda_graph_eligible(modelio.load_model(path, with_weights=False), fixed_batch)
        if not ok:
            self.graph_notes.append(f"part {part}: no CUDA graph: {why}")
            return
        shapes_in = {name: (tuple(_shape(v)), _dtype(v)) for name, v in feeds.items()}
        shapes_out = {name: (tuple(v.array.shape), v.array.dtype) for name, v in expected.items()}
        try:
            with CAPTURE_LOCK:  # ORT captures after 2 plain runs; two captures at once fail (900/901)
                graph = GraphPart(self.ort, graph_factory(path), self.device_id, shapes_in, shapes_out)
                self.graphs[part] = graph
                for _ in range(3):
                    got = self.run(part, feeds, set(expected))
                changed = {name: _halved(value, self.cupy, self.bind_stream) for name, value in feeds.items()}
                replayed = self.run(part, changed, set(expected))  # a replay must read the new inputs
            for name, value in expected.items():
                why = outputs_differ(got[name], self.to_host(value), name)
                if why:
                    raise RuntimeError(why)
            plain = self._run_plain(part, changed, set(expected))
            for name in expected:
                why = outputs_differ(replayed[name], plain[name], name)
                if why:
                    raise RuntimeError(f"a replay on new inputs: {why}")
        except Exception as exc:  # noqa: BLE001 - any failure: the plain session serves this part
            self.graphs.pop(part, None)
            text = first_line(exc, 200)
            self.graph_notes.append(f"part {part}: no CUDA graph: {text}")
            self.graph_rejections.append(f"part {part}: {text}")
            return
        self.graph_notes.append(f"part {part}: CUDA graph")

    def _run_graph(self, part: int, feeds: dict, to_host: set[str], lend: bool = False) -> dict:
        graph = self.graphs[part]
        cp = self.cupy
        with cp.cuda.Device(self.device_id):
            for name, value in graph.inputs.items():
                target = self._wrap_output(value)  # a CuPy view of the bound buffer
                source = feeds[name]
                if isinstance(source, DeviceTensor):  # this GPU's, or a peer's: copied directly either way
                    if source.array.shape != target.shape or source.array.dtype != target.dtype:
                        raise RuntimeError(f"input {name}: {source.array.shape} {source.array.dtype} does not fit "
                                           f"the captured {target.shape} {target.dtype}")
                    target.data.copy_from_device_async(source.array.data, target.nbytes, self.bind_stream)
                elif isinstance(source, Pinned):
                    target.set(source.array, stream=self.bind_stream)
                else:
                    target.set(np.ascontiguousarray(source), stream=self.bind_stream)
            self.bind_stream.synchronize()
            graph.session.run_with_iobinding(graph.binding)  # ORT synchronizes its stream when the run ends
            results: dict[str, np.ndarray | DeviceTensor] = {}
            for name, value in graph.outputs.items():
                view = DeviceTensor(self._wrap_output(value), self.device_id)
                if name in to_host:
                    results[name] = self.to_host(view, lend)
                else:  # the next replay overwrites the bound buffer: the batch keeps its own copy
                    copy = cp.empty(view.array.shape, view.array.dtype)
                    copy.data.copy_from_device_async(view.array.data, view.array.nbytes, self.bind_stream)
                    results[name] = DeviceTensor(copy, self.device_id)
            self.bind_stream.synchronize()
        return results

    # -- transfers ------------------------------------------------------------------------------------
    def measure_link(self, batch_bytes: int, repeats: int = 7) -> Link:
        """Host -> device latency and bandwidth on this worker's copy stream, from pinned buffers of 4 KiB and of
        the batch's own input size (at least 1 MiB), timed with CUDA events: what dmda predicts transfers with."""
        cp = self.cupy
        samples = []
        with cp.cuda.Device(self.device_id):
            for nbytes in (4096, max(int(batch_bytes), 1 << 20)):
                host = self.pinned.take((nbytes,), np.uint8)
                try:
                    device = cp.empty((nbytes,), np.uint8)
                    for run in range(repeats + 1):
                        started, done = cp.cuda.Event(), cp.cuda.Event()
                        started.record(self.copy_stream)
                        device.set(host, stream=self.copy_stream)
                        done.record(self.copy_stream)
                        done.synchronize()
                        if run:  # the first copy warms the path
                            samples.append((nbytes, cp.cuda.get_elapsed_time(started, done) / 1000))
                    del device
                finally:
                    self.pinned.give(host)
        return fit_link(samples)

    def to_device(self, value: np.ndarray | Pinned):
        """Host -> device on the copy stream: a Pinned array in one DMA; any other through a recycled pinned
        staging buffer (a host copy first)."""
        cp = self.cupy
        staging = None
        if isinstance(value, Pinned):
            source = value.array
        else:
            source = staging = self.pinned.take(value.shape, value.dtype)
            np.copyto(staging, value)
        with cp.cuda.Device(self.device_id):
            device = cp.empty(source.shape, source.dtype)
            device.set(source, stream=self.copy_stream)
            self.copy_stream.synchronize()
        if staging is not None:
            self.pinned.give(staging)
        return device

    def fetch(self, tensor: DeviceTensor) -> np.ndarray:
        """For a CPU worker's thread: a tensor of this GPU in host memory, on a stream of its own (the worker's
        copy stream stays free for its prefetches)."""
        with self.fetch_lock:
            return self.to_host(tensor, stream=self.fetch_stream)

    def to_host(self, tensor: DeviceTensor, lend: bool = False, stream=None) -> np.ndarray:
        """Device -> host into a recycled pinned buffer, on the copy stream. `lend`: that buffer itself comes
        back (no host copy), and whoever holds it gives it back to `pinned` when done (the executor does, when
        the batch is released); otherwise a plain copy comes back and the buffer is recycled at once."""
        cp = self.cupy
        stream = stream or self.copy_stream
        staging = self.pinned.take(tensor.array.shape, tensor.array.dtype)
        with cp.cuda.Device(self.device_id):
            tensor.array.get(stream=stream, out=staging)
            stream.synchronize()
        if lend:
            return staging
        host = staging.copy()
        self.pinned.give(staging)
        return host

    def prefetch(self, feeds: dict, issued_s: float) -> Prefetched | None:
        """Start copying a task's host inputs to this GPU on the copy stream, without waiting (None: nothing on
        the host). Pinned inputs go in one DMA; pageable ones through a pinned staging buffer."""
        host = {name: value for name, value in feeds.items() if not isinstance(value, DeviceTensor)}
        if not host:
            return None
        cp = self.cupy
        staging = []
        with cp.cuda.Device(self.device_id):
            started = cp.cuda.Event()
            started.record(self.copy_stream)
            arrays = {}
            for name, value in host.items():
                if isinstance(value, Pinned):
                    source = value.array
                else:
                    source = self.pinned.take(value.shape, value.dtype)
                    np.copyto(source, value)
                    staging.append(source)
                arrays[name] = cp.empty(source.shape, source.dtype)
                arrays[name].set(source, stream=self.copy_stream)
            done = cp.cuda.Event()
            done.record(self.copy_stream)
        return Prefetched(arrays, started, done, issued_s, staging)

    def arrived(self, copies: Prefetched) -> dict:
        """Wait for this task's copies only (its event), then its inputs as device tensors."""
        copies.done.synchronize()
        for buffer in copies.staging:
            self.pinned.give(buffer)
        copies.staging = []
        return {name: DeviceTensor(array, self.device_id) for name, array in copies.arrays.items()}

    def transfer_interval(self, copies: Prefetched | None) -> tuple[float, float] | None:
        """When the copies ran, on the loop's clock: their GPU duration (events) placed at their issue."""
        if copies is None:
            return None
        seconds = self.cupy.cuda.get_elapsed_time(copies.started, copies.done) / 1000
        return copies.issued_s, copies.issued_s + seconds

    def _as_cupy(self, value) -> Any:  # a cupy.ndarray
        if isinstance(value, DeviceTensor):
            if value.device_id == self.device_id:
                return value.array
            with self.cupy.cuda.Device(self.device_id), self.bind_stream:  # not CuPy's null stream: ORT's
                copy = self.cupy.asarray(value.array)  # peer copy             # streams would not wait for it
            self.bind_stream.synchronize()
            return copy
        if isinstance(value, Pinned):
            return self.to_device(value)
        return self.to_device(np.ascontiguousarray(value))

    def _wrap_output(self, ortvalue):
        """ORT allocated this output on the device (from its arena): view it as CuPy without a copy."""
        cp = self.cupy
        dtype = _ORT_DTYPES[ortvalue.data_type()]
        memory = cp.cuda.UnownedMemory(ortvalue.data_ptr(), max(ortvalue.tensor_size_in_bytes(), 1), ortvalue,
                                       self.device_id)
        return cp.ndarray(tuple(ortvalue.shape()), dtype, cp.cuda.MemoryPointer(memory, 0))

    # -- one task -------------------------------------------------------------------------------------
    def run(self, part: int, feeds: dict, to_host: set[str], lend: bool = False) -> dict:
        """Run a part on inputs wherever they are; outputs named in `to_host` come back to host memory
        (final results: a batch is done when its result is in host memory), the others stay on the GPU.
        `lend`: those come back in pinned buffers lent to the caller (see to_host)."""
        if part in self.graphs:
            return self._run_graph(part, feeds, to_host, lend)
        return self._run_plain(part, feeds, to_host, lend)

    def _run_plain(self, part: int, feeds: dict, to_host: set[str], lend: bool = False) -> dict:
        session = self.sessions[part]
        binding = session.io_binding()
        keep = []  # device inputs must outlive the run
        for spec in session.get_inputs():
            array = self._as_cupy(feeds[spec.name])
            keep.append(array)
            binding.bind_input(spec.name, "cuda", self.device_id, np.dtype(array.dtype).type, list(array.shape),
                               array.data.ptr)
        for name in self.output_names[part]:
            binding.bind_output(name, "cuda", self.device_id)
        # no binding.synchronize_inputs/outputs: they are cudaDeviceSynchronize, which would also wait for the
        # other workers on this GPU; inputs were waited for on the host, and ORT syncs its stream at run end
        session.run_with_iobinding(binding)
        results: dict[str, np.ndarray | DeviceTensor] = {}
        for name, value in zip(self.output_names[part], binding.get_outputs()):
            tensor = DeviceTensor(self._wrap_output(value), self.device_id)
            results[name] = self.to_host(tensor, lend) if name in to_host else tensor
        return results


def _halved(value, cupy, stream):
    """The same input with other values (to check that a CUDA graph's replay reads what is bound now). On a device,
    computed on `stream` and waited for: CuPy's null stream is not one that ORT's or our copy streams wait for."""
    if isinstance(value, DeviceTensor):
        if value.array.dtype.kind != "f":
            return value
        with cupy.cuda.Device(value.device_id), stream:
            halved = value.array * 0.5
        stream.synchronize()
        return DeviceTensor(halved, value.device_id)
    array = value.array if isinstance(value, Pinned) else value
    return array * 0.5 if array.dtype.kind == "f" else array


def _shape(value) -> tuple:
    if isinstance(value, DeviceTensor):
        return value.array.shape
    return (value.array if isinstance(value, Pinned) else value).shape


def _dtype(value) -> np.dtype:
    if isinstance(value, DeviceTensor):
        return np.dtype(value.array.dtype)
    return (value.array if isinstance(value, Pinned) else value).dtype


_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64), "tensor(int64)": np.dtype(np.int64), "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8), "tensor(uint8)": np.dtype(np.uint8), "tensor(bool)": np.dtype(np.bool_),
}
