"""`--system triton`: the same load sent to a real Triton Inference Server, query by query.

Each query is sent alone (one request of batch 1) at its arrival time through tritonclient's gRPC
async_infer; Triton's dynamic batcher makes the batches (preferred size N, up to N, released when N are
queued or the first has waited --max-queue-delay; default: wait for N, as the paper's batching does).
Group k = queries kN .. kN+N-1 of the arrival schedule; its record ends when all its results are back, and
its latency is measured from its first query's arrival, as for every other system.
Here Triton runs ONNX Runtime inside its Python backend (no ONNX Runtime backend is pip-installable):
run.json and the system label say so.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from .. import modelio
from ..errors import UserError, first_line
from ..load.schedule import BatchSchedule
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel
from ..runtime.realtime import wait_until
from ..runtime.scheduler import BatchRecord, Limits, TaskRecord, records_of
from ..runtime.transfer import DEFAULT_LINK
from ..runtime.workers import WorkerSpec, parse_workers
from ..triton.repository import MODEL_NAME, write_repository
from ..triton.server import TritonServer, wheel_dir
from .contract import BatchSizeSetup

WAIT_FOR_N_US = 10_000_000  # "wait for N": a delay no point reaches before its N-th query arrives
TRITON_NOTE = "Triton Inference Server 2.51 (nvidia-pytriton wheel), ONNX Runtime inside its Python backend"


class TritonClient:
    """One server per batch size, its gRPC client, and one random sample per input to send."""

    def __init__(self, server: TritonServer, model, seed: int):
        import tritonclient.grpc as grpcclient

        self.grpc, self.server, self.loop = grpcclient, server, None
        self.client = grpcclient.InferenceServerClient(server.url)
        self.specs = modelio.input_specs(model)
        self.samples = modelio.random_inputs(self.specs, 1, seed)

    def request(self):
        inputs = []
        for spec in self.specs:
            tensor = self.grpc.InferInput(spec.name, [1, *spec.shape], _triton_dtype(spec.dtype))
            tensor.set_data_from_numpy(self.samples[spec.name])
            inputs.append(tensor)
        return inputs

    def send(self, on_done) -> None:
        """on_done(result=..., error=...): tritonclient calls back with these keyword names only."""
        self.client.async_infer(MODEL_NAME, self.request(), callback=on_done)

    def service_time(self, size: int, runs: int = 10) -> float:
        """S(N): N queries sent at once, until the last result is back (Triton batches them)."""
        times = []
        for _ in range(runs):
            elapsed = self._one_batch(size)
            if not math.isfinite(elapsed):
                return float("nan")
            times.append(elapsed)
        return float(np.median(times))

    def _one_batch(self, size: int) -> float:
        done = threading.Semaphore(0)
        errors: list[str] = []

        def back(result=None, error=None):
            if error is not None:
                errors.append(str(error))
            done.release()

        start = time.perf_counter()
        for _ in range(size):
            self.send(back)
        for _ in range(size):
            done.acquire()
        return float("nan") if errors else time.perf_counter() - start

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.server.stop()


def _triton_dtype(dtype) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(np.dtype(dtype))


class TritonLoop:
    """Scheduler.run's contract for Triton: queries sent at their arrival times, groups of N recorded."""

    def __init__(self, loop: RealLoop, client: TritonClient):
        self.loop, self.client = loop, client

    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        records = records_of(schedule)
        lock = threading.Lock()
        finished = threading.Condition(lock)
        pending = {r.index: r.size for r in records}
        first_sent: dict[int, float] = {}
        done_at: dict[int, float] = {}
        closed: list[int] = []

        def back(k: int, result=None, error=None):
            now = self.loop.now()
            with lock:
                record = records[k]
                if error is not None and not record.error:
                    record.error = first_line(error)
                done_at[k] = max(done_at.get(k, 0.0), now)
                pending[k] -= 1
                if pending[k] == 0:
                    closed.append(k)
                    finished.notify_all()

        stop = ""
        for record in records:
            if not limits.may_release(record.index):
                break
            for q in range(record.size):
                due = record.first_arrival_s if q == 0 else None
                due = self._arrival(schedule, record, q) if due is None else due
                wait_until(self.loop.now, due)
                sent = self.loop.now()
                first_sent.setdefault(record.index, sent)
                if q == record.size - 1:
                    record.actual_release_s = sent  # its last query left: the group is complete at the server
                self.client.send(partial(back, record.index))
            with lock:
                newly, closed[:] = list(closed), []
            for k in sorted(newly):
                self._close(records[k], first_sent, done_at)
                stop = stop or (watch(records[k]) if watch and not records[k].error else "")
            unfinished = sum(1 for n in pending.values() if n > 0) - (len(records) - record.index - 1)
            stop = stop or limits.stop_reason(unfinished, self.loop.now())
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

    @staticmethod
    def _arrival(schedule: BatchSchedule, record: BatchRecord, q: int) -> float:
        """Query q of the group: the arrivals between its first and last (even for fixed rates)."""
        if record.size == 1:
            return record.first_arrival_s
        return record.first_arrival_s + q * (record.scheduled_release_s - record.first_arrival_s) / (record.size - 1)

    @staticmethod
    def _close(record: BatchRecord, first_sent: dict[int, float], done_at: dict[int, float]) -> None:
        end = done_at[record.index]
        record.end_s = end
        record.tasks.append(TaskRecord(0, 0, first_sent[record.index], end))


@dataclass(frozen=True)
class TritonConfig:
    workers: str  # one CPU worker: the model instance's cores
    output: Path  # the run directory: the server's repository and logs go under output/triton
    arrival: str = "fixed"
    max_queue_delay_ms: float | None = None
    port: int = 0  # gRPC port (HTTP +1, metrics +2); 0: free ones
    seed: int = 0


class TritonEngine:
    """One Triton server per batch size (max_batch_size = preferred = N), started before its points and
    stopped after them, also on errors and Ctrl-C."""

    name = "real"
    loop_factory = RealLoop
    link = DEFAULT_LINK  # no policy runs here

    def __init__(self, config: TritonConfig, part_files: list[Path]):
        if len(part_files) > 1:
            raise UserError("--system triton serves the whole model: give the model, not a plan")
        if config.arrival != "fixed":
            raise UserError("--system triton replays the fixed-rate stream only: drop --arrival")
        self.config, self.part_files = config, part_files
        workers = parse_workers(config.workers, sorted(os.sched_getaffinity(0)), False)
        if len(workers) != 1 or workers[0].kind != "cpu":
            raise UserError("--system triton runs one model instance on CPU cores here: give one CPU worker, "
                            "e.g. --workers cpu:1x2")
        self.workers: list[WorkerSpec] = [replace(workers[0], name="triton")]  # its one model instance
        self.perf = PerfModel()
        wheel_dir()  # not installed: one line saying how, before any work
        self.work = config.output / "triton"
        self.delay_us = WAIT_FOR_N_US if config.max_queue_delay_ms is None else int(1000 * config.max_queue_delay_ms)

    def prepare(self, n: int):
        worker = self.workers[0]
        model = self.part_files[0]
        repository = write_repository(self.work / f"repository_b{n}", model, n, self.delay_us, len(worker.cores),
                                      list(worker.cores))
        server = TritonServer(repository, self.work, self.config.port)
        server.start()
        try:
            client = TritonClient(server, modelio.load_model(model, with_weights=False), self.config.seed)
            for _ in range(3):  # warm: the stub's first ORT runs
                client.service_time(n, runs=1)
            service = client.service_time(n)
        except BaseException:  # Ctrl-C too: the server never outlives the sweep
            server.stop()
            raise
        return BatchSizeSetup(client, "", [service] if math.isfinite(service) else None)

    def runner(self, loop, executor, policy, graph):
        return TritonLoop(loop, executor)

    def after_point(self) -> None:
        pass

    def workers_label(self) -> str:
        return self.config.workers

    def metadata(self) -> dict:
        return {"start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "triton": TRITON_NOTE,
                "triton_max_queue_delay_us": self.delay_us, "triton_logs": str(self.work)}
