"""What every real-time system shares (the runtime's loop, the native and the Triton baselines): waiting for a
due time to the microsecond, and worker sessions pinned to their cores. The stop rule they share is
`Limits.stop_reason` (scheduler.py): one meaning of backlog, released batches not finished yet."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from ..kinds import CPU, WorkerKind
from ..ortenv import session_options
from . import hotwait

_PR_SET_TIMERSLACK = 29
_precise: set[int] = set()


ISSUER_NICE = -10  # where real-time scheduling is refused: the issuer at least above the workers' nice 0
ISSUER_FIFO = 1  # SCHED_FIFO priority of a thread that releases batches on time, where the system allows it


class IssuerPriority:
    """The calling thread, while a point runs, above every worker: SCHED_FIFO (root, CAP_SYS_NICE or an RLIMIT_RTPRIO),
    else nice -10, else unchanged (`level` says which). On 2 cores with googlenet on cpu:1x2 the issuer otherwise
    waited behind ONNX Runtime's threads: release lateness p99 0.9 ms quiet, 3.5 ms with a neighbour (nice -10:
    the same), 0.18 / 0.16 ms as SCHED_FIFO. It sleeps between releases, so it takes a core only to release.
    Workers, the baselines' included, stay at nice 0."""

    def __init__(self):
        self.saved: tuple[int, int, int] | None = None  # policy, real-time priority, nice
        self.level = "as the workers"

    def raise_(self) -> None:
        if self.saved is not None or not hasattr(os, "setpriority"):
            return
        ident = threading.get_native_id()
        scheduling = hasattr(os, "sched_getscheduler")
        policy = os.sched_getscheduler(0) if scheduling else 0
        rank = os.sched_getparam(0).sched_priority if scheduling else 0
        self.saved = (policy, rank, os.getpriority(os.PRIO_PROCESS, ident))
        # RESET_ON_FORK: threads this one starts meanwhile (gRPC's, for Triton's client) do not inherit the raise
        reset = getattr(os, "SCHED_RESET_ON_FORK", 0)
        if scheduling and (policy & ~reset) in (os.SCHED_FIFO, os.SCHED_RR):
            self.level = "real-time already"  # a process started under chrt keeps what it was given
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO | reset, os.sched_param(ISSUER_FIFO))
            self.level = f"SCHED_FIFO {ISSUER_FIFO}"
            return
        except (OSError, AttributeError):
            pass
        try:
            if scheduling and reset:
                os.sched_setscheduler(0, os.SCHED_OTHER | reset, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, ident, ISSUER_NICE)
            self.level = f"nice {ISSUER_NICE}"
        except OSError:  # not permitted: the issuer competes with the workers as an equal
            self.level = "as the workers"

    def restore(self) -> None:
        if self.saved is None:
            return
        policy, rank, nice = self.saved
        try:
            if hasattr(os, "sched_setscheduler"):
                os.sched_setscheduler(0, policy, os.sched_param(rank))
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass
        self.saved = None


def issuer_priority_level() -> str:
    """What an issuer thread gets on this machine (run.json's issuer_priority), tried on a short-lived thread."""
    found = []

    def probe():
        priority = IssuerPriority()
        priority.raise_()
        found.append(priority.level)
        priority.restore()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return found[0] if found else "as the workers"


def precise_timers() -> None:
    """This thread's timed waits wake when due: Linux lets a wait run up to 50 us late (timer slack) unless the
    thread asks for less; 1 ns here. Elsewhere (or if prctl is missing) nothing changes."""
    ident = threading.get_native_id()
    if ident in _precise:
        return
    _precise.add(ident)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_NEVER_RUNG = hotwait.Bell()  # a bell nobody rings: wait_until ends at its due time only


def wait_until(now: Callable[[], float], due: float) -> float | None:
    """Wait without the GIL (other threads run their Python meanwhile) until `due`; the time it woke, or None when
    `due` had already passed. Asleep, then polling the last 50 us in C (hotwait); without the native module, asleep
    with the thread's timer slack at 1 ns. (A Python spin would hold the GIL, and every other thread of the
    process would wait up to the 5 ms switch interval.)"""
    if due - now() <= 0:
        return None
    precise_timers()
    origin = time.perf_counter() - now()  # `now` is perf_counter from some t0: due on perf_counter's clock
    while True:
        remaining = due - now()
        if remaining <= 0:
            return now()
        if hotwait.NATIVE:  # asleep, then polling the last 50 us, without the GIL; 0.1 s at most in C (Ctrl-C)
            _NEVER_RUNG.wait_until(0, origin + min(due, now() + 0.1))
        else:
            time.sleep(remaining)


def pin_driver(cores: tuple[int, ...] | list[int]) -> None:
    """The calling thread, which drives a worker's ONNX Runtime runs, on the first of its cores: ORT's own intra-op
    threads are pinned to the others (pinned_session_options). Pinned to all of them, the driver was at times woken
    on the core of ORT's thread: googlenet on cpu:1x2 then ran at one core's speed (27 ms, not 15) in a third of the
    batches at 10 q/s."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cores[0]})


def pinned_session_options(cores: tuple[int, ...] | list[int], model: Path | None = None, batch: int | None = None,
                           kind: WorkerKind = CPU) -> ort.SessionOptions:
    """A worker's session: one intra-op thread per core, ORT's own threads pinned to cores[1:] (the driving thread,
    pinned by its caller, is the first); with `batch`, the model's free batch dimension fixed (static shapes)."""
    so = session_options(len(cores) or 1)
    so.log_severity_level = 4  # fatal only: a failed run raises, and the batch records why (errors column)
    if kind.pins_threads and len(cores) > 1:  # thread affinities are 1-based logical processors
        so.add_session_config_entry("session.intra_op_thread_affinities", ";".join(str(c + 1) for c in cores[1:]))
    if batch and model is not None:
        from .. import modelio

        for dim, size in modelio.batch_dim_values(modelio.load_model(model, with_weights=False), batch):
            so.add_free_dimension_override_by_name(dim, size)
    return so
