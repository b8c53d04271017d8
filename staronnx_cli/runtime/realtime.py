"""What every real-time system shares (the runtime's loop, the native and the Triton baselines): waiting for a
due time to the microsecond, and worker sessions pinned to their cores. The stop rule they share is
`Limits.stop_reason` (scheduler.py): one meaning of backlog, released batches not finished yet."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from ..ortenv import session_options
from . import hotwait

_PR_SET_TIMERSLACK = 29
_precise: set[int] = set()


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
        if hotwait.NATIVE:  # asleep, then polling the last 50 us, without the GIL
            _NEVER_RUNG.wait_until(0, origin + due)
        else:
            time.sleep(remaining)


def pinned_session_options(cores: tuple[int, ...] | list[int], model: Path | None = None, batch: int | None = None,
                           kind: str = "cpu") -> ort.SessionOptions:
    """A worker's session: one intra-op thread per core, ORT's own threads pinned to cores[1:] (the driving thread,
    pinned by its caller, is the first); with `batch`, the model's free batch dimension fixed (static shapes)."""
    so = session_options(len(cores) or 1)
    if kind == "cpu" and len(cores) > 1:  # thread affinities are 1-based logical processors
        so.add_session_config_entry("session.intra_op_thread_affinities", ";".join(str(c + 1) for c in cores[1:]))
    if batch and model is not None:
        from .. import modelio

        for spec in modelio.input_specs(modelio.load_model(model, with_weights=False)):
            if spec.batch_dim:
                so.add_free_dimension_override_by_name(spec.batch_dim, batch)
    return so
