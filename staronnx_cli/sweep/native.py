"""`--system native`: the baseline without a runtime. One ONNX Runtime session, batches served first in,
first out by a plain loop in one thread, driven by the same arrival schedule and written as the same files.

The loop waits for a batch's release (sleep, then spin), runs the session, records the end, and takes the
next batch, late if the previous one ran past its release: that queueing is what the baseline measures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import modelio
from ..errors import UserError, first_line
from ..load.schedule import BatchSchedule
from ..ortenv import providers_for, session_options
from ..runtime.loop import SPIN_S, RealLoop
from ..runtime.scheduler import BatchRecord, Limits, TaskRecord, records_of
from ..runtime.workers import WorkerSpec


class NativeSession:
    """The one session, made for batch size n with the worker's threads and cores; the calling thread
    (the loop's) is pinned to those cores while it exists."""

    def __init__(self, worker: WorkerSpec, model: Path, batch: int, seed: int = 0, warmup_runs: int = 3):
        self.worker, self.loop = worker, None
        self._saved_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if worker.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(worker.cores))
        so = session_options(len(worker.cores) or 1)
        if worker.kind == "cpu" and len(worker.cores) > 1:
            so.add_session_config_entry("session.intra_op_thread_affinities",
                                        ";".join(str(c + 1) for c in worker.cores[1:]))
        specs = modelio.input_specs(modelio.load_model(model, with_weights=False))
        for spec in specs:
            if spec.batch_dim:
                so.add_free_dimension_override_by_name(spec.batch_dim, batch)
        try:
            self.session = ort.InferenceSession(str(model), so, providers=providers_for(worker.kind, worker.device_id))
            self.feeds = modelio.random_inputs(specs, batch, seed)
            self.names = [o.name for o in self.session.get_outputs()]
            for _ in range(warmup_runs):
                self.session.run(self.names, self.feeds)
        except Exception as exc:
            self.close()
            raise UserError(f"native session cannot run batch {batch}: {first_line(exc)}") from None

    def run_batch(self, size: int) -> str:
        """Run one batch of `size` queries; returns '' or the error."""
        try:
            self.session.run(self.names, {k: v[:size] for k, v in self.feeds.items()})
            return ""
        except Exception as exc:  # noqa: BLE001 - recorded in the batch, the sweep goes on
            return f"{type(exc).__name__}: {first_line(exc)}"

    def service_time(self, w: int, size: int, parts: int, runs: int = 10) -> float:
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


class PlainLoop:
    """Scheduler.run's contract (records, stop reason) without a scheduler: FIFO on one session."""

    def __init__(self, loop: RealLoop, session: NativeSession):
        self.loop, self.session = loop, session

    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        records = records_of(schedule)
        for record in records:
            if not limits.may_release(record.index):
                break
            woke = self._wait_until(record.scheduled_release_s)
            # idle loop: released when it woke (its lateness); busy loop: the batch was there on time and queued
            record.actual_release_s = woke if woke is not None else record.scheduled_release_s
            start = self.loop.now()
            error = self.session.run_batch(record.size)
            end = self.loop.now()
            record.tasks.append(TaskRecord(0, 0, start, end))
            record.end_s, record.error = end, error
            upto = len(records) if limits.planned is None else limits.planned  # batches beyond are not released
            waiting = sum(1 for r in records[record.index + 1:upto] if r.scheduled_release_s <= end)
            if waiting > limits.max_backlog:
                return records, f"backlog of {waiting} released batches waiting (> {limits.max_backlog})"
            if end > limits.time_cap_s:
                return records, f"time cap of {limits.time_cap_s:.1f} s reached"
            why = watch(record) if watch and not error else ""
            if why:
                return records, why
        return records, ""

    def _wait_until(self, due: float) -> float | None:
        """Sleep, then spin the last stretch, as the runtime's loop does; the time it woke, or None when
        `due` had already passed (nothing to wait for)."""
        if due - self.loop.now() <= 0:
            return None
        while True:
            remaining = due - self.loop.now()
            if remaining <= 0:
                return self.loop.now()
            if remaining > SPIN_S:
                time.sleep(remaining - SPIN_S)


def check_native(workers: list[WorkerSpec], parts: int) -> None:
    if parts > 1:
        raise UserError("--system native runs the whole model in one session: give the model, not a plan")
    if len(workers) != 1:
        raise UserError(f"--system native runs one session on one device: give one worker, e.g. --workers "
                        f"cpu:1x{len(workers[0].cores) * len(workers) if workers[0].cores else 1}")
