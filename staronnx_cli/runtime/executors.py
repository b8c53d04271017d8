"""How a task's run comes about: ONNX Runtime on pinned worker threads (real), or a modelled duration (virtual).

Both call the scheduler's completion with (start_s, end_s, error) on the loop's thread.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .. import modelio
from ..errors import ort_reason
from ..inputdata import InputData, of_model
from . import hotwait
from .hotwait import Bell
from .prefetch import Prefetcher
from .realtime import pin_driver, pinned_session_options
from .transfer import Link
from .workers import WorkerSpec


class PointClock:
    """An executor is given a new loop for every point: `_new_point()` resets what belongs to one point."""

    @property
    def loop(self):
        return self._loop

    @loop.setter
    def loop(self, loop) -> None:
        self._loop = loop
        self._new_point()

    def _new_point(self) -> None:
        pass


class ModelledExecutor(PointClock):
    service_samples: list[float] = []  # modelled times do not spread: no spread is recorded
    """Virtual time: a task takes `duration(part, kind_key, batch)` seconds, exactly."""

    needs_input_bytes = False
    measures = True  # tests stand it in for measured times: the models learn from it as from real ones

    def __init__(self, loop, workers: list[WorkerSpec], duration: Callable[[int, str, int], float]):
        self.workers, self.duration = workers, duration
        self.loop = loop

    def _new_point(self) -> None:
        """Every worker is free at a point's start."""
        self.busy_until = [0.0] * len(self.workers)  # a worker runs one task at a time, in the order handed over

    def start(self, w: int, k: int, part: int, batch: int, complete) -> None:
        start = max(self.loop.now(), self.busy_until[w])
        end = start + self.duration(part, self.workers[w].kind_key, batch)
        self.busy_until[w] = end
        self.loop.schedule(end, complete, w, k, part, start, end)

    def release_batch(self, k: int) -> None:
        pass

    def close(self) -> None:
        pass

    def service_time(self, w: int, size: int, parts: int | range, runs: int = 1, on_task=None) -> float:
        """S(N) on worker w alone (of a mix's model: its range of parts); `on_task(part, seconds)` sees each task
        of the `runs` batches."""
        tasks = [(part, self.duration(part, self.workers[w].kind_key, size)) for part in part_range(parts)]
        for _ in range(runs if on_task is not None else 0):
            for part, seconds in tasks:
                on_task(part, seconds)
        return sum(seconds for _, seconds in tasks)


def part_range(parts: int | range) -> range:
    """`parts` parts from the first, or a mix's model's range of parts."""
    return parts if isinstance(parts, range) else range(parts)


CLOSE_WAIT_S = 10.0  # how long close() waits for all the worker threads together
WORKER_NICE = 0  # as the baselines' threads: at 19 a worker starved behind any neighbour (a query took 6.4 s)


@dataclass(frozen=True)
class ExecutorOptions:
    """How a ThreadExecutor builds its sessions."""

    warmup_runs: int = 3  # runs of each session before the first point
    variable_batches: bool = False  # dynamic batching: no fixed batch dimension
    seed: int = 0  # of the random inputs
    input_data: tuple[InputData, ...] = ()  # per model (a mix: each its own): random where not given
    model_outputs: tuple[str, ...] = ()  # a plan's outputs: returned to the host even where a later part reads one
    cuda_graphs: bool = True  # GPU workers run parts with static shapes as CUDA graphs
    memory_limits: dict[str, int] | None = None  # worker name -> bytes its sessions may hold (--memory-limit)


class ThreadExecutor(PointClock):
    """One thread per worker, pinned to its cores (CPU) or driving its GPU, with one warmed ORT session per part.

    Tensors between parts are kept per batch in `store`, on the memory node of the worker that made them
    (host arrays, or `gpu.DeviceTensor`s); a CPU worker reading a GPU tensor fetches it through that GPU's
    runner. `variable_batches` (dynamic batching) builds sessions without a fixed batch dimension.
    A mix (`models`: part -> model, `batch`: one size per model) gives every worker one runner per model, each
    with that model's sessions and inputs; part numbers are the union's, a runner's its own.
    """

    needs_input_bytes = False  # inputs travel as arrays; their bytes matter only to the simulator
    measures = True

    def __init__(self, loop, workers: list[WorkerSpec], part_files: list[Path], batch: int | list[int],
                 models: list[int] | None = None, options: ExecutorOptions | None = None):
        o = options or ExecutorOptions()
        warmup_runs, variable_batches, seed, cuda_graphs = o.warmup_runs, o.variable_batches, o.seed, o.cuda_graphs
        memory_limits = o.memory_limits
        # polling pays where a core is left for the issuer; else an idle worker blocks and the issuer sleeps
        self.polls = hotwait.NATIVE and hotwait.spare_cores([w.cores for w in workers], _available_cores()) > 0
        self.loop, self.workers = loop, workers
        self.cuda_graphs = cuda_graphs
        self.graph_notes: list[str] = []  # GPU workers: which parts run as CUDA graphs, and why not
        self.lent: dict[int, list] = {}  # batch -> (pool, pinned buffer) holding its final outputs
        self.store_lock = threading.Lock()
        self.part_model = models or [0] * len(part_files)
        count = max(self.part_model) + 1
        self.batches = [batch] * count if isinstance(batch, int) else list(batch)
        self.first_part = [self.part_model.index(m) for m in range(count)]
        self.files = [[f for f, m in zip(part_files, self.part_model) if m == model] for model in range(count)]
        self.memory_limits = memory_limits or {}  # worker name -> bytes its sessions may hold (--memory-limit)
        self.variable_batches = variable_batches
        self.store: dict[int, dict[str, Any]] = {}  # host arrays or gpu.DeviceTensors  # batch -> tensor name -> value
        protos = [modelio.load_model(p, with_weights=False) for p in part_files]
        specs = [modelio.plan_input_specs([p for p, of in zip(protos, self.part_model) if of == m])
                 for m in range(count)]  # every part's model inputs: a later part may read one the first does not
        self.inputs = [of_model(o.input_data, m).feeds(specs[m], self.batches[m], seed + m) for m in range(count)]
        self.whole = [modelio.whole_inputs(specs[m]) for m in range(count)]  # given whole to every batch
        consumed = {i.name for m in protos for i in m.graph.input}
        made = {o.name for m in protos for o in m.graph.output}
        self.final_outputs = {o.name for m in protos for o in m.graph.output if o.name not in consumed} | \
            (made & set(o.model_outputs))  # a model output a later part reads too (BERT's hidden states)
        self.arena_caps = self._arena_caps(protos)  # GPU worker name -> each session's arena (--memory-limit)
        self.inboxes: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in workers]
        self.bells = [Bell() for _ in workers]  # rung with every task handed over: an idle worker polls its bell
        self.runners: list[list[Any] | None] = [None] * len(workers)  # per worker: a Cpu/CudaSessions per model
        self.gpus: dict[int, Any] = {}  # device id -> its CudaSessions, for fetching tensors from it
        self.links: dict[str, Link] = {}  # GPU worker name -> the host->device link it measured
        self.graph_rejections: list[str] = []  # CUDA graphs captured but refused: said as warnings
        self.stopping = threading.Event()  # set on Ctrl-C while the workers prepare: no capture starts after it
        ready = threading.Barrier(len(workers) + 1)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._serve, args=(i, warmup_runs, ready),
                                         name=f"staronnx-{w.name}", daemon=True) for i, w in enumerate(workers)]
        for t in self.threads:
            t.start()
        try:
            self._await_workers(ready)
        except BaseException:  # Ctrl-C while the workers prepare: let them finish what ORT is doing, then stop
            self.stopping.set()  # workers waiting for the capture lock give up instead of capturing
            ready.abort()  # (an interpreter exiting under a thread inside ONNX Runtime can crash)
            self.close()  # workers already past the barrier wait for a task: told to stop
            raise
        if self.errors:
            self.close()
            from ..errors import UserError

            raise UserError(self.errors[0])

    # -- preparing a worker ---------------------------------------------------------------------------
    def _await_workers(self, ready: threading.Barrier) -> None:
        ready.wait()

    def _arena_caps(self, protos) -> dict[str, int]:
        """--memory-limit on a GPU worker: its pinned inputs and graph buffers come out of its budget first, the
        rest is shared by all its sessions (plain and graph, every part of every model)."""
        from .cudagraph import cuda_graph_eligible
        from .gpumemory import arena_share, graph_buffer_bytes, pinned_bytes

        caps = {}
        for worker in self.workers:
            budget = self.memory_limits.get(worker.name)
            if not worker.on_gpu or not budget:
                continue
            fixed = [None if self.variable_batches else self.batches[m] for m in self.part_model]
            graphs = [p for p, proto in enumerate(protos)
                      if self.cuda_graphs and cuda_graph_eligible(proto, fixed[p])[0]]
            held = sum(pinned_bytes(inputs) for inputs in self.inputs) + sum(
                graph_buffer_bytes(protos[p], self.batches[self.part_model[p]]) for p in graphs)
            caps[worker.name] = arena_share(budget, len(protos) + len(graphs), held, worker.name)
        return caps

    @contextmanager
    def _capturing(self):
        """The capture lock, unless the sweep was interrupted while the workers prepared (then KeyboardInterrupt)."""
        from .cudagraph import CAPTURE_LOCK

        with CAPTURE_LOCK:
            if self.stopping.is_set():
                raise KeyboardInterrupt
            yield

    def _options(self, path: Path, worker: WorkerSpec, fixed_batch: int | None):
        return pinned_session_options(worker.cores, path, fixed_batch, worker.kind)

    def _prepare(self, worker: WorkerSpec, m: int, warmup_runs: int) -> Any:
        """Worker's runner of model m: its sessions, warmed on its inputs (a GPU kind's on its device)."""
        part_files, fixed_batch = self.files[m], None if self.variable_batches else self.batches[m]
        prepare = self._gpu_sessions if worker.on_gpu else self._cpu_sessions
        return prepare(worker, m, part_files, fixed_batch, warmup_runs)

    def _gpu_sessions(self, worker: WorkerSpec, m: int, part_files: list[Path], fixed_batch: int | None,
                      warmup_runs: int) -> Any:
        from .gpu import CudaSessions

        share = self.arena_caps.get(worker.name)

        def factory(path, graph: bool = False):
            options = {"gpu_mem_limit": str(share)} if share else {}  # --memory-limit: each session's share
            if graph:
                options["enable_cuda_graph"] = "1"
            return ort.InferenceSession(str(path), self._options(path, worker, fixed_batch),
                                        providers=worker.kind.providers(worker.device_id, **options))

        with self._capturing():  # GPU workers are prepared one at a time: no capture overlaps other GPU work
            runner = CudaSessions(worker.device_id, part_files, factory, self.inputs[m], warmup_runs,
                                  graph_factory=(lambda path: factory(path, graph=True)) if self.cuda_graphs
                                  else None, fixed_batch=fixed_batch, cancelled=self.stopping.is_set)
        self.graph_notes += [f"{worker.name} {note}" for note in runner.graph_notes]
        self.graph_rejections += [f"{worker.name} {note}" for note in runner.graph_rejections]
        self.links[worker.name] = runner.link
        self.gpus.setdefault(worker.device_id, runner)  # several workers on one GPU: any of them can fetch
        return runner

    def _cpu_sessions(self, worker: WorkerSpec, m: int, part_files: list[Path], fixed_batch: int | None,
                      warmup_runs: int) -> CpuSessions:
        sessions = [ort.InferenceSession(str(p), self._options(p, worker, fixed_batch),
                                         providers=worker.kind.providers()) for p in part_files]
        cpu = CpuSessions(sessions)
        warm: dict = dict(self.inputs[m])
        for part, session in enumerate(sessions):  # chain order, so later parts get real inputs
            for _ in range(warmup_runs):
                outputs = cpu.run(part, {x.name: warm[x.name] for x in session.get_inputs()})
            warm.update(outputs)
        return cpu

    def _serve(self, i: int, warmup_runs: int, ready: threading.Barrier):
        worker = self.workers[i]
        try:
            pin_driver(worker.cores)  # this thread on the first core, ORT's threads on the others
            if hasattr(os, "setpriority"):  # ORT's own threads are created below and inherit it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
            self.runners[i] = [self._prepare(worker, m, warmup_runs) for m in range(len(self.files))]
        except KeyboardInterrupt:  # the sweep was interrupted while this worker waited to capture
            return
        except Exception as exc:  # noqa: BLE001 - reported once, as a user-facing line
            self.errors.append(f"worker {worker.name} cannot prepare its sessions: {ort_reason(exc)}")
        try:
            ready.wait()
        except threading.BrokenBarrierError:  # the sweep was interrupted while the workers prepared
            return
        runners = self.runners[i]
        if runners is None:
            return
        if worker.on_gpu:
            self._serve_gpu(i, worker, runners)
            return
        while True:
            item = self._next_task(i)
            if item is None:
                return
            k, part, size, complete = item
            start = self.loop.now()
            error = ""
            try:
                m = self.part_model[part]
                runner, local = runners[m], part - self.first_part[m]
                feeds = {name: self._input(k, m, name, size, worker, runner) for name in runner.input_names[local]}
                outputs = runner.run(local, feeds)
                self._keep(k, outputs)
            except Exception as exc:  # noqa: BLE001 - the point records the error and the sweep goes on
                error = f"{type(exc).__name__}: {ort_reason(exc)}"
            end = self.loop.now()
            self.loop.deliver(complete, i, k, part, start, end, error)

    def _serve_gpu(self, i: int, worker: WorkerSpec, runners: list) -> None:
        """A GPU worker's loop: the inputs of the tasks it holds are copied ahead while the current one runs."""
        inbox, closing = self.inboxes[i], False
        pending: deque = deque()

        def copy(item):
            k, part, size, _ = item
            m = self.part_model[part]
            runner, local = runners[m], part - self.first_part[m]
            feeds = {name: self._input(k, m, name, size, worker, runner) for name in runner.input_names[local]}
            return feeds, runner.prefetch(feeds, self.loop.now())

        ahead = Prefetcher(copy)
        while True:
            if not pending:
                item = self._next_task(i)
                if item is None:
                    return
                pending.append(item)
            while not closing and len(pending) <= ahead.depth:  # take what is already held, without waiting
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                else:
                    pending.append(item)
            start = self.loop.now()
            error, transfer = "", None
            item = pending[0]
            k, part, size, complete = item
            m = self.part_model[part]
            runner, local = runners[m], part - self.first_part[m]
            try:
                ahead.ahead(pending)
                feeds, copies = ahead.take(item)
                if copies is not None:
                    feeds = {**feeds, **runner.arrived(copies)}
                outputs = runner.run(local, feeds, self.final_outputs, lend=True)
                lent = [(runner.pinned, outputs[name]) for name in self.final_outputs if name in outputs]
                transfer = runner.transfer_interval(copies)
                self._keep(k, outputs, lent)
            except Exception as exc:  # noqa: BLE001 - the point records the error and the sweep goes on
                error = f"{type(exc).__name__}: {ort_reason(exc)}"
            pending.popleft()
            end = self.loop.now()
            self.loop.deliver(complete, i, k, part, start, end, error, transfer)
            if closing and not pending:
                return

    def _next_task(self, i: int):
        """Worker i's next task: polled for (hotwait) a while without the GIL, then waited for blocked."""
        inbox, bell = self.inboxes[i], self.bells[i]
        while True:
            try:
                return inbox.get_nowait()
            except queue.Empty:
                pass
            if self.polls:
                seen = bell.value()
                if not inbox.empty() or bell.wait_change(seen) != seen:
                    continue  # handed over while it looked, or while it polled
            return inbox.get()  # nothing within the polling time (or no core to poll on): asleep until the next

    def _input(self, k: int, m: int, name: str, size: int, worker: WorkerSpec, runner):
        if name in self.inputs[m]:
            rows = 0 if name in self.whole[m] else size  # a whole input (a threshold) is every batch's
            if worker.on_gpu:
                return runner.inputs.batch(name, rows)  # born pinned: one DMA to the device
            return self.inputs[m][name][:rows] if rows else self.inputs[m][name]  # a leading slice stays contiguous
        value = self.store[k][name]
        if not worker.on_gpu and not isinstance(value, np.ndarray):
            return self.gpus[value.device_id].fetch(value)
        return value

    def service_time(self, w: int, size: int, parts: int | range, runs: int = 10, on_task=None) -> float:
        """S(N): the median time of one batch through every part (of a mix's model: its range) on worker `w` alone
        (nothing else running): the sum of its tasks' times, each from its start to its end on the worker (the
        hand-overs around them are the runtime's overhead, which the latency shows against the ideal).
        `on_task(part, seconds)` sees each task's time (to calibrate performance models outside any point)."""
        from .loop import RealLoop

        saved, self.loop = self.loop, RealLoop(lead_s=0.0)
        errors: list[str] = []
        times = []
        finished: queue.SimpleQueue = queue.SimpleQueue()

        def done(w_, k_, part, start, end, error="", transfer=None):  # on the worker's thread
            try:
                if error:
                    errors.append(error)
                elif on_task is not None:
                    on_task(part, end - start)
            except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread, not lost on the worker's
                finished.put(exc)
                return
            finished.put(end - start)

        try:
            for _ in range(runs):
                busy = 0.0
                for part in part_range(parts):
                    self.start(w, -1, part, size, done)
                    seconds = finished.get()
                    if isinstance(seconds, BaseException):
                        raise seconds
                    busy += seconds
                times.append(busy)
        finally:
            self.release_batch(-1)
            self.loop = saved
        self.service_samples = [] if errors else times  # the spread of these runs is recorded with S(N)
        return float("nan") if errors else float(np.median(times))

    # -- the scheduler's side ------------------------------------------------------------------------
    def start(self, w: int, k: int, part: int, batch: int, complete) -> None:
        self.inboxes[w].put((k, part, batch, complete))
        self.loop.ring(self.bells[w])

    def _keep(self, k: int, outputs: dict, lent: list | None = None) -> None:
        """A task's outputs, kept for its batch, unless the batch was released while the task ran (it failed
        or its point stopped): then nothing is kept and lent buffers go straight back."""
        with self.store_lock:
            if k in self.released:
                for pool, buffer in lent or []:
                    pool.give(buffer)
                return
            self.store.setdefault(k, {}).update(outputs)
            if lent:
                self.lent.setdefault(k, []).extend(lent)

    def release_batch(self, k: int) -> None:
        with self.store_lock:
            self.released.add(k)
            self.store.pop(k, None)
            for pool, buffer in self.lent.pop(k, []):  # final outputs GPU workers left in pinned buffers
                pool.give(buffer)

    def _new_point(self) -> None:
        """Batch indices start again at 0: nothing of the new point is released yet. The loop's thread polls
        before a release only where the workers leave it a core."""
        self.released: set[int] = set()
        self._loop.polls = self.polls

    def close(self) -> None:
        """Every worker told to stop; 10 s in all for them to finish what they run (not 10 s each)."""
        for inbox, bell in zip(self.inboxes, self.bells):
            inbox.put(None)
            bell.ring()
        deadline = time.monotonic() + CLOSE_WAIT_S
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))


def _available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


class CpuSessions:
    """A CPU worker's sessions, one per part, with their input and output names looked up once."""

    def __init__(self, sessions: list[ort.InferenceSession]):
        self.sessions = sessions
        self.input_names = [[i.name for i in s.get_inputs()] for s in sessions]
        self.output_names = [[o.name for o in s.get_outputs()] for s in sessions]

    def run(self, part: int, feeds: dict) -> dict:
        names = self.output_names[part]
        return dict(zip(names, self.sessions[part].run(names, feeds)))
