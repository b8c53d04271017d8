"""The native core (`_core.c`) driven from Python: a point on CPU workers with its hot path out of Python.

The Python scheduler (scheduler.py) costs ~10-20 us of Python per task under one GIL, so two workers ran no faster
than one on a small model, and the issuer's and workers' hand-overs were thread wake-ups. The core runs the same
point in C: one issuer thread releases the batches on time and applies the backlog and time-cap rules (`Limits`),
workers pinned to their cores take their next task themselves and call ONNX Runtime's C API, dmda places each task
and the performance models learn from every task. This module builds what the core needs before the clock starts
(the StarPU split: bookkeeping off the hot path), turns finished batches into records for the judge (`watch`) as
they finish (at most every millisecond), answers `Limits.extend`, and reads the learnt models back at the end.

The simulated engine and GPU workers keep the Python scheduler; `STARONNX_HOT_PATH=python` forces it everywhere.
"""

from __future__ import annotations

import gc
import math
import os
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np

from .. import modelio
from ..inputdata import of_model
from ..load.schedule import BatchSchedule
from .executors import ExecutorOptions, PointClock, part_range
from .hotwait import WORKER_SPIN_S, spare_cores
from .perfmodel import PerfModel, Stats
from .policies import Policy
from .scheduler import BatchRecord, Limits, TaskRecord, records_of
from .workers import WorkerSpec

_core: ModuleType | None
try:
    from . import _core
except ImportError:  # no C compiler when staronnx was installed
    _core = None

POLICIES = {"dmda": 0, "eager": 1, "roundrobin": 2, "opara": 4}
FIXED = 3  # the core's policy that runs every task on one given worker (service times, warm-up)
LEAD_NS = 50_000_000  # time 0 of a point is this long after it is started (as RealLoop's lead)
DRAIN_GAP_NS = 1_000_000  # Python turns finished batches into records at most this often (at once at low load)
WAIT_NS = 100_000_000  # and looks at least this often (Ctrl-C is handled between its waits)
ANSWER_AFTER = 64  # records made before the issuer's question is answered (~0.3 ms of Python)
SHORT_SPIN_NS = 200_000  # an idle worker's poll where no core is left to spare
MODEL_FIELDS = 7  # a performance model in the core: perfmodel.Stats's fields, in order (_core.c's MODEL_FIELDS)
OPT_ALL = 99  # ONNX Runtime's ORT_ENABLE_ALL (ortenv.session_options' default)
ONNX_TYPES = {np.dtype(t): code for t, code in (
    ("float32", 1), ("uint8", 2), ("int8", 3), ("uint16", 4), ("int16", 5), ("int32", 6), ("int64", 7), ("bool", 9),
    ("float16", 10), ("float64", 11), ("uint32", 12), ("uint64", 13))}


def library_path() -> Path | None:
    """The ONNX Runtime shared library the onnxruntime wheel ships beside its Python module."""
    import onnxruntime

    found = sorted(Path(onnxruntime.__file__).parent.joinpath("capi").glob("libonnxruntime.so*"))
    return found[0] if found else None


def unavailable() -> str:
    """Why the native core cannot run on this machine ('' when it can)."""
    if os.environ.get("STARONNX_HOT_PATH", "").lower() == "python":
        return "STARONNX_HOT_PATH=python"
    if _core is None:
        return "the native core was not compiled (install a C compiler, then pip install -e . again)"
    path = library_path()
    if path is None:
        return "the onnxruntime wheel ships no libonnxruntime.so"
    try:
        _core.load(str(path))
    except OSError as exc:
        return f"ONNX Runtime's C library cannot be loaded ({exc})"
    return ""


def ineligible(workers: list[WorkerSpec], policy: str, mix: bool) -> str:
    """Why a sweep's points run on the Python scheduler instead of the core ('' when the core runs them)."""
    if any(w.on_gpu for w in workers):
        return "GPU workers run on the Python scheduler"
    if mix:
        return "a mix runs on the Python scheduler"
    if policy not in POLICIES:
        return f"--policy {policy} runs on the Python scheduler"
    return unavailable()


PASSED = "\0passed:"  # the slot key of an output that is its part's own input, passed through


class PartTensors:
    """Every tensor of a plan as a slot number (model inputs first), and each part's inputs and outputs by slot."""

    def __init__(self, part_files: list[Path]):
        protos = [modelio.load_model(p, with_weights=False) for p in part_files]
        self.protos = protos
        inputs = [[i.name for i in m.graph.input if i.name not in {x.name for x in m.graph.initializer}]
                  for m in protos]
        # made by a part: its outputs, but for those that are its own inputs passed through (a model output that is
        # also a model input: its part depended on itself)
        produced = {o.name for p, m in enumerate(protos) for o in m.graph.output if o.name not in inputs[p]}
        self.model_inputs = list(dict.fromkeys(n for names in inputs for n in names if n not in produced))
        # a part's output that is its own input passed through is a copy in a slot of its own (the core writes no
        # output into a model input's slot); readers of that name read the input's
        passed = [[PASSED + o.name if o.name in inputs[p] else o.name for o in m.graph.output]
                  for p, m in enumerate(protos)]
        names = list(dict.fromkeys(self.model_inputs + [n for names_ in passed for n in names_]))
        self.slot = {n: s for s, n in enumerate(names)}
        self.inputs = [[(n, self.slot[n]) for n in names_] for names_ in inputs]
        self.outputs = [[(o.name, self.slot[key]) for o, key in zip(m.graph.output, keys)]
                        for m, keys in zip(protos, passed)]
        maker = {o.name: p for p, m in enumerate(protos) for o in m.graph.output if o.name not in inputs[p]}
        self.deps = [sorted({maker[n] for n in names_ if n in maker}) for names_ in inputs]  # who makes what it reads

    def specs(self) -> list[modelio.InputSpec]:
        """The model inputs' specs (from the first part that reads each), in slot order."""
        found = {spec.name: spec for spec in modelio.plan_input_specs(self.protos)}
        return [found[n] for n in self.model_inputs]

    def free_dims(self, batch: int | None) -> list[list[tuple[str, int]]]:
        """Per part, the batch dimension fixed at `batch` (static shapes), as pinned_session_options does."""
        if not batch:
            return [[] for _ in self.protos]
        return [modelio.batch_dim_values(p, batch) for p in self.protos]


class CoreExecutor(PointClock):
    """The workers of a point as the core's threads, with one ONNX Runtime session per (worker, part), warmed."""

    needs_input_bytes = False
    measures = True
    service_samples: list[float] = []
    graph_notes: list[str] = []  # CUDA graphs and GPU links: none on CPU workers
    graph_rejections: list[str] = []
    links: dict = {}

    def __init__(self, workers: list[WorkerSpec], part_files: list[Path], batch: int,
                 options: ExecutorOptions | None = None):
        assert _core is not None, "check unavailable() first"
        o = options or ExecutorOptions()
        self.workers, self.batch = workers, batch
        self.nparts = len(part_files)
        tensors = PartTensors(part_files)
        specs = tensors.specs()
        arrays = of_model(o.input_data, 0).feeds(specs, batch, o.seed)
        # the core reads them: kept alive here (copied C-contiguous, a scalar kept 0-d: ascontiguousarray makes it 1-d)
        self.arrays = [np.array(arrays[s.name], order="C") for s in specs]
        inputs = [(a, ONNX_TYPES[a.dtype], not s.batched) for a, s in zip(self.arrays, specs)]
        self.kinds = list(dict.fromkeys(w.kind_key for w in workers))  # workers of one kind share their models
        self.spare = spare_cpus(workers)
        spin = int(WORKER_SPIN_S * 1e9) if self.spare else SHORT_SPIN_NS
        self.core = _core.Core([list(w.cores) for w in workers], [self.kinds.index(w.kind_key) for w in workers],
                               [str(p) for p in part_files], tensors.deps, tensors.inputs, tensors.outputs,
                               len(tensors.slot), inputs, batch,
                               tensors.free_dims(None if o.variable_batches else batch), OPT_ALL, spin, self.spare)
        self.loop = None
        for w in range(len(workers)):
            self.run_alone(w, batch, o.warmup_runs)

    def run_alone(self, w: int, size: int, runs: int) -> list[list[float]]:
        """`runs` batches of `size`, one after the other, on worker w alone: each run's task times (s) by part.
        One point with every batch released at once, so that the runs follow each other as in a busy stream (run by
        run, each after the worker slept, a one-Add model's run took 15-40 us instead of 2 on the VM measured)."""
        assert _core is not None
        if runs <= 0:
            return []
        arrays = PointArrays(np.zeros(runs, dtype=np.int64), np.full(runs, size, dtype=np.int64), self.nparts)
        self.core.start(*arrays.buffers(), _core.monotonic_ns(), runs, 1 << 40, 1 << 62, FIXED, w)
        self.core.end()
        errors = self.core.errors()
        if errors:
            raise RuntimeError(errors[0][2])
        ends, starts = arrays.task_end.reshape(runs, self.nparts), arrays.task_start.reshape(runs, self.nparts)
        return ((ends - starts) * 1e-9).tolist()

    def service_time(self, w: int, size: int, parts: int | range, runs: int = 10, on_task=None) -> float:
        """S(N) on worker w alone, as ThreadExecutor.service_time measures it (the sum of its tasks' times)."""
        try:
            times = self.run_alone(w, size, runs)
        except RuntimeError:
            self.service_samples = []
            return float("nan")
        for run in times if on_task is not None else []:
            for part in part_range(parts):
                on_task(part, run[part])
        self.service_samples = [sum(run) for run in times]
        return float(np.median(self.service_samples))

    def issuer_level(self) -> str:
        return self.core.issuer_level()

    def release_batch(self, k: int) -> None:
        """The core frees a batch's tensors itself when it closes."""

    def close(self) -> None:
        self.core = None  # its threads are joined and its sessions released as it is freed


def spare_cpus(workers: list[WorkerSpec]) -> list[int]:
    """The cores no worker is pinned to (the issuer's and the drain's; none where the workers take them all)."""
    available = sorted(os.sched_getaffinity(0))
    if spare_cores([w.cores for w in workers], available) <= 0:
        return []
    taken = {c for w in workers for c in w.cores}
    return [c for c in available if c not in taken]


class PointArrays:
    """What the core writes while a point runs (ns on CLOCK_MONOTONIC; task arrays indexed k * parts + part)."""

    def __init__(self, release_ns: np.ndarray, sizes: np.ndarray, parts: int):
        count = len(release_ns)
        self.release_ns, self.sizes = np.ascontiguousarray(release_ns, np.int64), np.ascontiguousarray(sizes, np.int64)
        self.actual_ns = np.zeros(count, dtype=np.int64)
        self.end_ns = np.zeros(count, dtype=np.int64)
        self.finished = np.zeros(count, dtype=np.int64)
        self.task_start = np.zeros(count * parts, dtype=np.int64)
        self.task_end = np.zeros(count * parts, dtype=np.int64)
        self.task_worker = np.full(count * parts, -1, dtype=np.int32)

    def buffers(self) -> tuple:
        return (self.release_ns, self.sizes, self.actual_ns, self.end_ns, self.finished, self.task_start,
                self.task_end, self.task_worker)


class CoreRunner:
    """One point through the core (the Runner contract of systems/contract.py)."""

    def __init__(self, executor: CoreExecutor, policy: Policy, perf: PerfModel, launch_order: list[int] | None = None):
        self.executor, self.perf = executor, perf
        self.policy = POLICIES[policy.name]
        order = launch_order or list(range(executor.nparts))  # opara: each worker runs the earliest batch's part
        self.ranks = [order.index(p) for p in range(executor.nparts)]  # first, then the first in this order

    def run(self, schedule: BatchSchedule, limits: Limits, watch=None) -> tuple[list[BatchRecord], str]:
        records = records_of(schedule)
        drain = Drain(self, records, schedule, watch)
        sizes = {int(n) for n in schedule.sizes}
        self.push_model(sizes)
        self.executor.core.set_order(self.ranks)
        collecting = gc.isenabled()
        gc.disable()  # no pauses while the point runs (and no scans of its growing records)
        with on_cores(self.executor.spare):  # this thread drains on the cores the workers left, never on theirs
            try:
                drain.start(limits)
                drain.follow(limits)
            except BaseException:
                self.executor.core.stop()
                self.executor.core.end()
                raise
            finally:
                if collecting:
                    gc.enable()
            reason = drain.finish(limits)
        self.pull_model(sizes)
        return records, reason

    def push_model(self, sizes: set[int]) -> None:
        """The performance models of the point's batch sizes, into the core (which learns from every task)."""
        e = self.executor
        table = np.zeros((e.batch + 1, e.nparts, len(e.kinds), MODEL_FIELDS), dtype=np.float64)
        for size in sizes:
            for part in range(e.nparts):
                for kind, key in enumerate(e.kinds):
                    s = self.perf.stats.get((part, key, size))
                    if s is not None:
                        table[size, part, kind] = (s.count, s.mean, s.m2, s.dropped_first, s.outliers,
                                                   s.outlier_mean, s.outlier_m2)
        e.core.set_model(table.tobytes())

    def pull_model(self, sizes: set[int]) -> None:
        """What the core learnt, back into the performance models (saved by the engine after the point)."""
        e = self.executor
        table = np.frombuffer(e.core.model(), dtype=np.float64).reshape(e.batch + 1, e.nparts, len(e.kinds),
                                                                        MODEL_FIELDS)
        for size in sizes:
            for part in range(e.nparts):
                for kind, key in enumerate(e.kinds):
                    count, mean, m2, dropped, outliers, outlier_mean, outlier_m2 = table[size, part, kind].tolist()
                    if dropped:
                        self.perf.stats[(part, key, size)] = Stats(int(count), mean, m2, True, int(outliers),
                                                                   outlier_mean, outlier_m2)


class Drain:
    """The Python side of a running point: finished batches become records, the judge hears of them, the models
    learn from their tasks, and the issuer's question at the release limit is answered."""

    def __init__(self, runner: CoreRunner, records: list[BatchRecord], schedule: BatchSchedule, watch):
        self.runner, self.records, self.watch = runner, records, watch
        self.core = runner.executor.core
        self.parts = runner.executor.nparts
        self.arrays = PointArrays(np.round(schedule.release_s * 1e9), schedule.sizes, self.parts)
        self.seen, self.errors, self.reason, self.t0 = 0, 0, "", 0
        self.error_of: dict[int, str] = {}

    def start(self, limits: Limits) -> None:
        planned = len(self.records) if limits.planned is None else limits.planned
        assert _core is not None
        self.t0 = _core.monotonic_ns() + LEAD_NS
        self.core.start(*self.arrays.buffers(), self.t0, planned, min(limits.max_backlog, 1 << 62),
                        int(min(limits.time_cap_s, 1e9) * 1e9), self.runner.policy, 0)

    def follow(self, limits: Limits) -> None:
        """Until the point is over: records of finished batches for the judge, and the issuer's question at the
        release limit, answered once at most ANSWER_AFTER more records are made. (Made all first, at 357,000 q/s
        the records of the batches finished since Python last ran took 3.6 ms, every batch of it released late by
        up to that; answered first, the judge missed up to a millisecond of the latest batches.)"""
        while True:
            finished, asking, over, errors = self.core.wait(WAIT_NS, DRAIN_GAP_NS)
            if errors != self.errors:
                self.errors = errors
                self.error_of = {k: text for k, _, text in reversed(self.core.errors())}
            if asking:  # answered after at most ANSWER_AFTER records: the issuer waits (see below)
                if finished > self.seen and self.watch is not None:
                    self.take(min(finished, self.seen + ANSWER_AFTER))
                k = self.next_release()
                grant = not self.reason and limits.may_release(k) and limits.planned is not None
                self.core.answer(limits.planned if grant and limits.planned is not None else -1)
            if finished > self.seen and self.watch is not None:  # without a judge, records are made at the end
                self.take(finished)
            if over:
                return

    def next_release(self) -> int:
        return int(np.count_nonzero(self.arrays.actual_ns))

    def take(self, finished: int) -> None:
        for k in self.arrays.finished[self.seen:finished].tolist():
            why = self.watch(self.fill(k)) if self.watch else ""
            if why and not self.reason:
                self.reason = why
                self.core.stop()
        self.seen = finished

    def fill(self, k: int) -> BatchRecord:
        """Batch k's record from the core's arrays (seconds from the point's t0)."""
        a, record, t0 = self.arrays, self.records[k], self.t0
        record.actual_release_s = (int(a.actual_ns[k]) - t0) * 1e-9
        if a.end_ns[k]:
            record.end_s = (int(a.end_ns[k]) - t0) * 1e-9
        base = k * self.parts
        tasks = [TaskRecord(p, int(a.task_worker[base + p]), (int(a.task_start[base + p]) - t0) * 1e-9,
                            (int(a.task_end[base + p]) - t0) * 1e-9)
                 for p in range(self.parts) if a.task_worker[base + p] >= 0]
        record.tasks = sorted(tasks, key=lambda t: t.end_s)
        record.error = self.error_of.get(k, "")
        return record

    def finish(self, limits: Limits) -> str:
        """The point is over: every released batch's record filled; why it stopped."""
        released, code, unfinished, stop_ns = self.core.end()
        self.error_of = {k: text for k, _, text in reversed(self.core.errors())}
        for k in range(released):
            if not math.isfinite(self.records[k].end_s) or not self.records[k].tasks or self.records[k].error:
                self.fill(k)
        if self.reason:
            return self.reason
        if code == 1:
            return limits.stop_reason(unfinished, 0.0)
        if code == 2:
            return limits.stop_reason(0, (stop_ns - self.t0) * 1e-9)
        if code == 4:
            return "out of memory: a task could not be queued (lower the rate, --batches or the batch size)"
        return ""


@contextmanager
def on_cores(cores: list[int]):
    """The calling thread on these cores meanwhile (nothing changes without any)."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)
