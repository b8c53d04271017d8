"""`--system native`: the baseline without a runtime. One ONNX Runtime session, batches served first in,
first out by a plain loop in one thread, driven by the same arrival schedule and written as the same files.
`--system ortparallel` is the same loop over a session in ONNX Runtime's parallel execution mode (independent
nodes at once on inter-op threads, one per core of the worker): ONNX Runtime's own operator parallelism as a
baseline for branch plans. `--system ortstreams` is the same loop over a session whose nodes run on ONNX
Runtime's logic streams, one per group of a branch plan (streams.py).

The loop waits for a batch's release (sleep, then spin), runs the session, records the end, and takes the
next batch, late if the previous one ran past its release: that queueing is what the baseline measures.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import modelio
from ..errors import UserError, baked_batch_hint, ort_reason
from ..inputdata import RANDOM, InputData
from ..load.schedule import BatchSchedule
from ..runtime.loop import RealLoop
from ..runtime.perfmodel import PerfModel
from ..runtime.realtime import pin_driver, pinned_session_options, wait_until
from ..runtime.scheduler import BatchRecord, Limits, TaskRecord, records_of
from ..runtime.transfer import DEFAULT_LINK
from ..runtime.workers import WorkerSpec, parse_workers
from .contract import BatchSizeSetup, EngineLog


@dataclass(frozen=True)
class NativeConfig:
    workers: str  # one worker: the session's device and cores
    seed: int = 0
    parallel: bool = False  # ORT_PARALLEL: inter-op threads, one per core (--system ortparallel)
    stream_of: dict[str, int] | None = None  # a node's logic stream, from a branch plan (--system ortstreams)
    variable_batches: bool = False  # --max-queue-delay: a batch may close before N queries arrived
    input_data: InputData = RANDOM


class NativeEngine:
    """`--system native`: one ORT session, FIFO in a plain loop (no scheduler, no worker threads, no models)."""

    name = "real"
    loop_factory = RealLoop
    link = DEFAULT_LINK  # no policy runs here

    def __init__(self, config: NativeConfig, part_files: list[Path]):
        from ..ortenv import cuda_status

        status = cuda_status()
        self.config, self.part_files = config, part_files
        self.workers = parse_workers(config.workers, sorted(os.sched_getaffinity(0)), status.usable, status.reason)
        check_native(self.workers, len(part_files), config.parallel)
        self.perf = PerfModel()  # nothing to predict: the plain loop takes batches in order
        self.log = EngineLog()

    def prepare(self, n: int | tuple[int, ...]) -> BatchSizeSetup:
        if isinstance(n, tuple):  # make_engine gives mixes to staronnx and triton only
            raise UserError("--system native serves one model: a mix runs on staronnx or triton")
        try:
            session = NativeSession(self.workers[0], self.part_files[0], n, self.config)
        except UserError as exc:
            return BatchSizeSetup(failure=f"{exc}{baked_batch_hint(n, str(exc))}")
        service = session.service_time(n)
        return BatchSizeSetup(session, "", [service] if math.isfinite(service) else None)

    def after_point(self) -> None:
        pass

    def runner(self, loop, executor, policy, graph):
        return PlainRunner(loop, executor)

    def workers_label(self) -> str:
        return self.config.workers

    def metadata(self) -> dict:
        how = ("in ONNX Runtime's parallel execution mode, an inter-op thread per core" if self.config.parallel
               else f"its nodes on ONNX Runtime's logic streams, one per group of the branch plan "
                    f"({len(set(self.config.stream_of.values()))})" if self.config.stream_of
               else "sequential, an intra-op thread per core")
        return {"start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "native": f"one ONNX Runtime session ({how}), batches first in first out in one plain loop"}


class NativeSession:
    """The one session, made for batch size n with the worker's threads and cores; the calling thread
    (the loop's) is pinned to those cores while it exists."""

    def __init__(self, worker: WorkerSpec, model: Path, batch: int, config: NativeConfig | None = None,
                 warmup_runs: int = 3):
        c = config or NativeConfig("")
        parallel, stream_of = c.parallel, c.stream_of
        self.worker, self.loop = worker, None
        self.streams: list[int] = []  # nodes per logic stream (--system ortstreams)
        self._saved_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if worker.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(worker.cores))
        fixed = None if c.variable_batches else batch  # a partial batch (--max-queue-delay) must fit the session
        so = pinned_session_options(worker.cores[:1] if parallel else worker.cores, model, fixed, worker.kind)
        if parallel:  # independent nodes at once, each on one core; ORT's threads inherit this thread's cores
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            so.inter_op_num_threads = max(1, len(worker.cores))
        specs = modelio.input_specs(modelio.load_model(model, with_weights=False))
        providers = worker.kind.providers(worker.device_id)
        if stream_of is not None:
            from .streams import PARTITION_KEY, partition_file

            partition, self.streams = partition_file(
                model, lambda: pinned_session_options(worker.cores, model, fixed, worker.kind), providers, stream_of)
            so.add_session_config_entry(PARTITION_KEY, str(partition))
        try:
            self.session = ort.InferenceSession(str(model), so, providers=providers)
            if not parallel:  # as the runtime's workers: this thread on the first core, ORT's threads on the others
                pin_driver(worker.cores)
            self.feeds = c.input_data.feeds(specs, batch, c.seed)
            self.whole = modelio.whole_inputs(specs)  # given whole to every batch, never sliced
            self.names = [o.name for o in self.session.get_outputs()]
            for _ in range(warmup_runs):
                self.session.run(self.names, self.feeds)
        except Exception as exc:
            self.close()
            raise UserError(f"native session cannot run batch {batch}: {ort_reason(exc)}") from None

    def run_batch(self, size: int) -> str:
        """Run one batch of `size` queries; returns '' or the error."""
        try:
            self.session.run(self.names, modelio.leading_rows(self.feeds, size, self.whole))
            return ""
        except Exception as exc:  # noqa: BLE001 - recorded in the batch, the sweep goes on
            return f"{type(exc).__name__}: {ort_reason(exc)}"

    def service_time(self, size: int, runs: int = 10) -> float:
        """S(N): the median of `runs` batches of `size` run back to back."""
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            if self.run_batch(size):
                return float("nan")
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    def close(self) -> None:
        if self._saved_affinity is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None


class PlainRunner:
    """Scheduler.run's contract (records, stop reason) without a scheduler: FIFO on one session."""

    def __init__(self, loop: RealLoop, session: NativeSession):
        self.loop, self.session = loop, session

    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        records = records_of(schedule)
        releases = [r.scheduled_release_s for r in records]  # in order: the backlog is a bisection, not a scan
        self.loop.start_clock(issuer=False)  # the records are built: the point's time starts now; this thread is
        # the worker too, at a worker's nice, as the runtime's workers
        for record in records:
            if not limits.may_release(record.index):
                break
            woke = wait_until(self.loop.now, record.scheduled_release_s)
            # idle loop: released when it woke (its lateness); busy loop: the batch was there on time and queued
            record.actual_release_s = woke if woke is not None else record.scheduled_release_s
            start = self.loop.now()
            error = self.session.run_batch(record.size)
            end = self.loop.now()
            record.tasks.append(TaskRecord(0, 0, start, end))
            record.end_s, record.error = end, error
            upto = len(records) if limits.planned is None else limits.planned  # batches beyond are not released
            later = record.index + 1
            unfinished = max(0, bisect.bisect_right(releases, end, later, max(later, upto)) - later)
            why = limits.stop_reason(unfinished, end) or (watch(record) if watch and not error else "")
            if why:
                return records, why
        return records, ""


def check_native(workers: list[WorkerSpec], parts: int, parallel: bool = False) -> None:
    if parts > 1:
        raise UserError("--system native runs the whole model in one session: give the model, not a plan")
    if parallel and any(w.on_gpu for w in workers):
        raise UserError("--system ortparallel is ONNX Runtime's parallel mode on CPU cores: give a CPU worker, e.g. "
                        "--workers cpu:1x2")
    if len(workers) != 1:
        raise UserError(f"--system native runs one session on one device: give one worker, e.g. --workers "
                        f"cpu:1x{len(workers[0].cores) * len(workers) if workers[0].cores else 1}")
