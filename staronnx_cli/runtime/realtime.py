"""What every real-time system shares (the runtime's loop, the native and the Triton baselines): waiting for a
due time to the microsecond, and worker sessions pinned to their cores. The stop rule they share is
`Limits.stop_reason` (scheduler.py): one meaning of backlog, released batches not finished yet."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from ..ortenv import session_options

SPIN_S = 0.0005  # the last half millisecond before a due time is spun, not slept (sleep wakes 90-160 us late)


def wait_until(now: Callable[[], float], due: float) -> float | None:
    """Sleep, then spin the last stretch; the time it woke, or None when `due` had already passed."""
    if due - now() <= 0:
        return None
    while True:
        remaining = due - now()
        if remaining <= 0:
            return now()
        if remaining > SPIN_S:
            time.sleep(remaining - SPIN_S)


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
