"""`--system triton`: the same load sent to a real Triton Inference Server, query by query.

Each query is sent alone (one request of batch 1) at its arrival time through tritonclient's gRPC
async_infer; Triton's dynamic batcher makes the batches (preferred size N, up to N, released when N are
queued or the first has waited --max-queue-delay; default: wait for N, as the paper's batching does).
Group k = queries kN .. kN+N-1 of the arrival schedule; its record ends when all its results are back, and
its latency is measured from its first query's arrival, as for every other system.
A mix (`sweep --mix`) is one repository with every model (Triton's name: the mix's name for it), each with its
own batcher and one instance on the same cores; the queries of all models are sent in arrival order across them.
Here Triton runs ONNX Runtime inside its Python backend (no ONNX Runtime backend is pip-installable):
run.json and the system label say so.
"""

from __future__ import annotations

import heapq
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import onnx

from .. import modelio
from ..errors import UserError, first_line
from ..inputdata import InputData, of_model
from ..load.schedule import BatchSchedule
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel
from ..runtime.realtime import issuer_priority_level, wait_until
from ..runtime.scheduler import BatchRecord, Limits, TaskRecord, records_of
from ..runtime.transfer import DEFAULT_LINK
from ..runtime.workers import WorkerSpec, parse_workers
from ..triton.repository import MODEL_NAME, ServedModel, write_repository
from ..triton.server import TritonServer, wheel_dir
from .contract import BatchSizeSetup, EngineLog

WAIT_FOR_N_US = 10_000_000  # "wait for N": a delay no point reaches before its N-th query arrives
TRITON_NOTE = "Triton Inference Server 2.51 (nvidia-pytriton wheel), ONNX Runtime inside its Python backend"


class TritonClient:
    """One server per batch size (a mix: per combination), its gRPC client, and each model's batch of samples,
    sent one query at a time in turn (the i-th query of a batch of N holds sample i, as the other systems' batches
    do). Models are named by their index in the list given (a mix's order)."""

    def __init__(self, server: TritonServer, models: list[tuple[str, onnx.ModelProto]], seed: int,
                 data: tuple[InputData, ...] = (), rows: tuple[int, ...] = ()):
        import tritonclient.grpc as grpcclient

        self.grpc, self.server, self.loop = grpcclient, server, None
        self.client = grpcclient.InferenceServerClient(server.url)
        self.names = [name for name, _ in models]
        self.specs = [modelio.input_specs(model) for _, model in models]
        self.rows = [rows[m] if m < len(rows) else 1 for m in range(len(models))]
        self.samples = [of_model(data, m).feeds(specs, self.rows[m], seed + m)
                        for m, specs in enumerate(self.specs)]
        self.turn = [0] * len(models)

    def request(self, model: int):
        row = self.turn[model] % self.rows[model]
        self.turn[model] += 1
        inputs = []
        for spec in self.specs[model]:
            tensor = self.grpc.InferInput(spec.name, [1, *spec.shape], _triton_dtype(spec.dtype))
            tensor.set_data_from_numpy(self.samples[model][spec.name][row:row + 1])
            inputs.append(tensor)
        return inputs

    def send(self, on_done, model: int = 0) -> None:
        """on_done(result=..., error=...): tritonclient calls back with these keyword names only."""
        self.client.async_infer(self.names[model], self.request(model), callback=on_done)

    def service_time(self, size: int, runs: int = 10, model: int = 0) -> float:
        """S(N): N queries sent at once, until the last result is back (Triton batches them)."""
        times = []
        for _ in range(runs):
            elapsed = self._one_batch(size, model)
            if not math.isfinite(elapsed):
                return float("nan")
            times.append(elapsed)
        return float(np.median(times))

    def _one_batch(self, size: int, model: int) -> float:
        done = threading.Semaphore(0)
        errors: list[str] = []

        def back(result=None, error=None):
            if error is not None:
                errors.append(str(error))
            done.release()

        start = time.perf_counter()
        for _ in range(size):
            self.send(back, model)
        for _ in range(size):
            done.acquire()
        return float("nan") if errors else time.perf_counter() - start

    def close(self) -> None:
        """The channel closed on a thread of its own, waited for CLOSE_WAIT_S at most: a gRPC channel that Ctrl-C
        interrupted inside a call can wait forever in close(), and the server must be stopped all the same."""
        def close_quietly() -> None:  # the channel is discarded either way: its errors are nobody's business
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 (a traceback from a dying thread would break the one-line errors)
                pass

        closer = threading.Thread(target=close_quietly, name="triton-client-close", daemon=True)
        try:
            closer.start()
            closer.join(CLOSE_WAIT_S)
        finally:
            self.server.stop()


CLOSE_WAIT_S = 5.0


def _triton_dtype(dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(np.dtype(dtype))


class TritonRunner:
    """Scheduler.run's contract for Triton: queries sent at their arrival times (a mix's models interleaved),
    groups of N recorded. `parts[m]`: model m's part in the run's graph, which its records' tasks name."""

    def __init__(self, loop: RealLoop, client: TritonClient, parts: list[int]):
        self.loop, self.client, self.parts = loop, client, parts

    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        records = records_of(schedule)
        self.loop.start_clock()  # the records are built: the point's time starts now (this thread: the issuer)
        try:
            return self._run(schedule, records, limits, watch)
        finally:
            self.loop.stop_clock()

    def _run(self, schedule: BatchSchedule, records: list[BatchRecord], limits: Limits, watch
             ) -> tuple[list[BatchRecord], str]:
        lock = threading.Lock()
        finished = threading.Condition(lock)
        pending = {r.index: r.size for r in records}
        first_sent: dict[int, float] = {}
        done_at: dict[int, float] = {}
        closed: list[int] = []
        unfinished: set[int] = set()  # groups whose last query was sent and whose answers are not all back

        def back(k: int, result=None, error=None):
            now = self.loop.now()
            with lock:
                record = records[k]
                if error is not None and not record.error:
                    record.error = first_line(error)
                done_at[k] = max(done_at.get(k, 0.0), now)
                pending[k] -= 1
                if pending[k] == 0:
                    unfinished.discard(k)
                    closed.append(k)
                    finished.notify_all()

        stop = ""
        for due, k, q in self._queries(schedule, records, limits):
            record = records[k]
            wait_until(self.loop.now, due)
            sent = self.loop.now()
            first_sent.setdefault(k, sent)
            if q == record.size - 1:
                record.actual_release_s = sent  # its last query left: the group is complete at the server
                with lock:  # its last answer comes after this send: it cannot be back yet
                    unfinished.add(k)
            self.client.send(partial(back, k), record.model)
            if q < record.size - 1:
                continue
            with lock:
                newly, closed[:] = list(closed), []
            for j in sorted(newly):
                self._close(records[j], first_sent, done_at)
                stop = stop or (watch(records[j]) if watch and not records[j].error else "")
            with lock:
                backlog = len(unfinished)  # counted as groups finish: a fast model has thousands of groups
            stop = stop or limits.stop_reason(backlog, self.loop.now())
            if stop:
                break
        deadline = time.perf_counter() + max(5.0, limits.time_cap_s - self.loop.now())
        with lock:
            sent_groups = set(first_sent)
            while any(pending[k] > 0 for k in sent_groups) and time.perf_counter() < deadline and not stop:
                finished.wait(timeout=0.2)
            newly, closed[:] = list(closed), []
        for k in sorted(newly):
            self._close(records[k], first_sent, done_at)
            if not stop and watch and not records[k].error:
                stop = watch(records[k])
        if not stop and any(pending[k] > 0 for k in sent_groups):
            stop = "answers still missing at the time cap"
        return records, stop

    def _queries(self, schedule: BatchSchedule, records: list[BatchRecord], limits: Limits
                 ) -> Iterator[tuple[float, int, int]]:
        """(arrival, group, query) of the released groups, in arrival order across groups: a mix's group of one
        model spans arrivals of the others. Groups are released in order (`limits.may_release`), each once the
        stream reaches the first arrival of any group from it on, so none is asked for before it is due."""
        firsts = np.array([r.first_arrival_s for r in records])
        earliest_from = np.minimum.accumulate(firsts[::-1])[::-1]  # earliest first arrival of groups k, k+1, ...
        stream: list[tuple[float, int, int]] = []
        k, releasing = 0, True
        while True:
            while releasing and k < len(records) and (not stream or earliest_from[k] <= stream[0][0]):
                if not limits.may_release(k):
                    releasing = False
                    break
                for q in range(records[k].size):
                    heapq.heappush(stream, (self._arrival(records[k], q, schedule.arrival_s), k, q))
                k += 1
            if not stream:
                return
            yield heapq.heappop(stream)

    @staticmethod
    def _arrival(record: BatchRecord, q: int, arrival_s: np.ndarray | None) -> float:
        """Query q of the group: its own arrival where the schedule holds every query's (Triton's batcher sees the
        stream as it came); a mix's schedule does not: its first and last at theirs, the others evenly between
        (their arrivals at a fixed rate)."""
        if arrival_s is not None and record.first_query + q < len(arrival_s):
            return float(arrival_s[record.first_query + q])
        if record.size == 1:
            return record.first_arrival_s
        return record.first_arrival_s + q * (record.scheduled_release_s - record.first_arrival_s) / (record.size - 1)

    def _close(self, record: BatchRecord, first_sent: dict[int, float], done_at: dict[int, float]) -> None:
        end = done_at[record.index]
        record.end_s = end
        record.tasks.append(TaskRecord(self.parts[record.model], 0, first_sent[record.index], end))


@dataclass(frozen=True)
class TritonConfig:
    workers: str  # one CPU worker: the model instance's cores
    output: Path  # the run directory: the server's repository and logs go under output/triton
    arrival: str = "fixed"
    max_queue_delay_ms: float | None = None
    port: int = 0  # gRPC port (HTTP +1, metrics +2); 0: free ones
    seed: int = 0
    input_data: tuple[InputData, ...] = ()  # per model (a mix: each model's)


def _refuse_whole_inputs(path: Path) -> None:
    """Triton's dynamic batcher stacks every input of a model along the batch axis: an input given whole to every
    batch (a threshold of shape []) cannot be served batched there."""
    whole = [s.name for s in modelio.input_specs(modelio.load_model(path, with_weights=False)) if not s.batched]
    if whole:
        raise UserError(f"input '{whole[0]}' has no batch axis (staronnx gives it whole to every batch); Triton's "
                        "dynamic batcher stacks every input along one: sweep this model with --system staronnx or "
                        "--system native")


class TritonEngine:
    """One Triton server per batch size (max_batch_size = preferred = N; a mix: one model each with its own N),
    started before its points and stopped after them, also on errors and Ctrl-C."""

    name = "real"
    loop_factory = RealLoop
    link = DEFAULT_LINK  # no policy runs here

    def __init__(self, config: TritonConfig, part_files: list[Path], target=None):
        members = target.members if target is not None else None
        plans = [m for m in members or [] if len(m.target.part_files) > 1]
        if plans:
            raise UserError(f"--system triton serves whole models: mix model '{plans[0].name}' is a plan of "
                            f"{len(plans[0].target.part_files)} parts; give its .onnx file or zoo name")
        if not members and len(part_files) > 1:
            raise UserError("--system triton serves the whole model: give the model, not a plan")
        if config.arrival != "fixed":
            raise UserError("--system triton replays the fixed-rate stream only: drop --arrival (in a mix file: "
                            'arrival = "fixed")')
        self.config, self.part_files = config, part_files
        # (Triton's name, ONNX file) and the run graph's part of each model served
        self.models = [(m.name, m.target.part_files[0]) for m in members] if members else [(MODEL_NAME, part_files[0])]
        self.parts = [m.first_part for m in members] if members else [0]
        for _, path in self.models:
            _refuse_whole_inputs(path)
        workers = parse_workers(config.workers, sorted(os.sched_getaffinity(0)), False)
        if len(workers) != 1 or workers[0].on_gpu:
            raise UserError("--system triton runs one model instance on CPU cores here: give one CPU worker, "
                            "e.g. --workers cpu:1x2")
        self.workers: list[WorkerSpec] = [replace(workers[0], name="triton")]  # its one model instance (per model)
        self.perf = PerfModel()
        self.log = EngineLog()
        wheel_dir()  # not installed: one line saying how, before any work
        self.work = config.output / "triton"
        self.delay_us = WAIT_FOR_N_US if config.max_queue_delay_ms is None else int(1000 * config.max_queue_delay_ms)

    def prepare(self, n: int | tuple[int, ...]) -> BatchSizeSetup:
        """A started server for batch size n (a mix: one size per model), warmed, and S(N) of each model alone:
        one number in a list (None when unknown), or a mix's one list per model (NaN when unknown: the sweep's
        backlog bound compares the figures)."""
        sizes = n if isinstance(n, tuple) else (n,)
        worker = self.workers[0]
        served = [ServedModel(name, path, size) for (name, path), size in zip(self.models, sizes)]
        repository = write_repository(self.work / f"repository_b{'_'.join(map(str, sizes))}", served, self.delay_us,
                                      len(worker.cores), list(worker.cores))
        server = TritonServer(repository, self.work, self.config.port)
        server.start()
        try:
            client = TritonClient(server, [(m.name, modelio.load_model(m.path, with_weights=False)) for m in served],
                                  self.config.seed, self.config.input_data, sizes)
            for m, size in enumerate(sizes):
                for _ in range(3):  # warm: the stub's first ORT runs
                    client.service_time(size, runs=1, model=m)
            services = [client.service_time(size, model=m) for m, size in enumerate(sizes)]
        except BaseException:  # Ctrl-C too: the server never outlives the sweep
            server.stop()
            raise
        if isinstance(n, tuple):
            return BatchSizeSetup(client, "", [[service] for service in services])
        return BatchSizeSetup(client, "", services if math.isfinite(services[0]) else None)

    def runner(self, loop, executor, policy, graph):
        return TritonRunner(loop, executor, self.parts)

    def after_point(self) -> None:
        pass

    def workers_label(self) -> str:
        return self.config.workers

    def metadata(self) -> dict:
        return {"start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "triton": TRITON_NOTE,
                "issuer_priority": issuer_priority_level(),
                "triton_max_queue_delay_us": self.delay_us, "triton_logs": str(self.work)}
