"""How a task's run comes about: ONNX Runtime on pinned worker threads (real), or a modelled duration (virtual).

Both call the scheduler's completion with (start_s, end_s, error) on the loop's thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import modelio
from ..ortenv import session_options
from .workers import WorkerSpec


class ModelledExecutor:
    """Virtual time: a task takes `duration(part, kind_key, batch)` seconds, exactly."""

    def __init__(self, loop, workers: list[WorkerSpec], duration: Callable[[int, str, int], float]):
        self.loop, self.workers, self.duration = loop, workers, duration

    def start(self, w: int, k: int, part: int, batch: int, complete) -> None:
        start = self.loop.now()
        end = start + self.duration(part, self.workers[w].kind_key, batch)
        self.loop.schedule(end, lambda: complete(start, end))

    def release_batch(self, k: int) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadExecutor:
    """One thread per CPU worker, pinned to its cores, with one warmed ORT session per part."""

    def __init__(self, loop, workers: list[WorkerSpec], part_files: list[Path], batch: int, warmup_runs: int = 3):
        self.loop, self.workers = loop, workers
        self.store: dict[tuple[int, str], np.ndarray] = {}
        model = modelio.load_model(part_files[0], with_weights=False)
        self.model_inputs = modelio.random_inputs(modelio.input_specs(model), batch)
        self.inboxes = [queue.SimpleQueue() for _ in workers]
        self.sessions: list[list[ort.InferenceSession] | None] = [None] * len(workers)
        ready = threading.Barrier(len(workers) + 1)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._serve, args=(i, part_files, batch, warmup_runs, ready),
                                         name=f"staronnx-{w.name}", daemon=True) for i, w in enumerate(workers)]
        for t in self.threads:
            t.start()
        ready.wait()
        if self.errors:
            self.close()
            from ..errors import UserError

            raise UserError(self.errors[0])

    def _session(self, path: Path, worker: WorkerSpec, batch: int) -> ort.InferenceSession:
        so = session_options(len(worker.cores))
        if len(worker.cores) > 1:  # the caller thread is pinned below; ORT's extra threads get 1-based ids
            so.add_session_config_entry("session.intra_op_thread_affinities",
                                        ";".join(str(c + 1) for c in worker.cores[1:]))
        for spec in modelio.input_specs(modelio.load_model(path, with_weights=False)):
            if spec.batch_dim:
                so.add_free_dimension_override_by_name(spec.batch_dim, batch)
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def _feeds(self, session: ort.InferenceSession, k: int) -> dict:
        return {i.name: self.model_inputs[i.name] if i.name in self.model_inputs else self.store[(k, i.name)]
                for i in session.get_inputs()}

    def _serve(self, i: int, part_files: list[Path], batch: int, warmup_runs: int, ready: threading.Barrier):
        worker = self.workers[i]
        try:
            if hasattr(os, "sched_setaffinity") and worker.cores:
                os.sched_setaffinity(0, set(worker.cores))  # pins this thread (pid 0 = the caller)
            sessions = [self._session(p, worker, batch) for p in part_files]
            warm: dict = dict(self.model_inputs)
            for session in sessions:  # warm up in chain order so later parts get real inputs
                feeds = {x.name: warm[x.name] for x in session.get_inputs()}
                names = [o.name for o in session.get_outputs()]
                for _ in range(warmup_runs):
                    outputs = session.run(names, feeds)
                warm.update(zip(names, outputs))
            self.sessions[i] = sessions
        except Exception as exc:  # noqa: BLE001 - reported once, as a user-facing line
            self.errors.append(f"worker {worker.name} cannot prepare its sessions: {str(exc).splitlines()[0][:200]}")
        ready.wait()
        if self.sessions[i] is None:
            return
        while True:
            item = self.inboxes[i].get()
            if item is None:
                return
            k, part, complete = item
            session = self.sessions[i][part]
            start = self.loop.now()
            error = ""
            try:
                names = [o.name for o in session.get_outputs()]
                outputs = session.run(names, self._feeds(session, k))
                for name, value in zip(names, outputs):
                    self.store[(k, name)] = value
            except Exception as exc:  # noqa: BLE001 - the point records the error and the sweep goes on
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            end = self.loop.now()
            self.loop.post(lambda s=start, e=end, err=error, c=complete: c(s, e, err))

    def start(self, w: int, k: int, part: int, batch: int, complete) -> None:
        self.inboxes[w].put((k, part, complete))

    def release_batch(self, k: int) -> None:
        for key in [key for key in self.store if key[0] == k]:
            self.store.pop(key, None)

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for t in self.threads:
            t.join(timeout=10)
