"""The task columns of batches.csv, written and read in one place.

A batch's tasks are packed into three cells: `placement` '0:cpu0,1:cuda0' (part -> worker), `task_times`
'0:0.1000000-0.2000000;1:...' (part -> start-end in s from the point's t0), and `transfer_times` (the same for the
copies of a GPU task's inputs, where the worker measured them; empty otherwise).
"""

from __future__ import annotations

import math

import pandas as pd

from ..errors import UserError
from .schema import flag

TASK_COLUMNS = ["batch_index", "part", "worker", "start_s", "end_s", "transfer_start_s", "transfer_end_s", "measured"]


def pack_tasks(tasks, worker_names: list[str]) -> dict[str, str]:
    """A batch's TaskRecords (part, worker, start_s, end_s, transfer) -> its three cells."""
    tasks = sorted(tasks, key=lambda t: t.part)
    return {"placement": ",".join(f"{t.part}:{worker_names[t.worker]}" for t in tasks),
            "task_times": ";".join(f"{t.part}:{t.start_s:.7f}-{t.end_s:.7f}" for t in tasks),
            "transfer_times": ";".join(f"{t.part}:{t.transfer[0]:.7f}-{t.transfer[1]:.7f}" for t in tasks
                                       if t.transfer)}


def task_table(batches: pd.DataFrame) -> pd.DataFrame:
    """batches.csv's task cells unpacked: one row per task (batch, part, worker, start, end, and the span of its
    input copies where a GPU worker made them; NaN otherwise; whether its batch was measured, not warm-up).
    Batches without tasks (failed) are skipped."""
    rows = []
    for b in batches.to_dict("records"):
        if not _filled(b.get("placement")) and not _filled(b.get("task_times")):  # never started, or failed
            continue
        try:
            where = dict(item.split(":", 1) for item in str(b["placement"]).split(","))
            copies, times = dict(spans(b.get("transfer_times"))), spans(b["task_times"])
        except ValueError:
            raise UserError(f"batches.csv: batch {b.get('batch_index')} of N={b.get('batch_size')} at "
                            f"{b.get('rate_qps')} q/s has unreadable task cells (placement {b['placement']!r}, "
                            f"task_times {str(b['task_times'])[:40]!r}; edited?): sweep again") from None
        for part, (start, end) in times:
            copy = copies.get(part, (float("nan"), float("nan")))
            rows.append({"batch_index": int(b["batch_index"]), "part": int(part), "worker": where.get(part, "?"),
                         "start_s": start, "end_s": end, "transfer_start_s": copy[0], "transfer_end_s": copy[1],
                         "measured": flag(b.get("measured"), missing=True)})
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


def _filled(cell) -> bool:
    """A task cell with something in it (read_batches reads an empty one as '', older readers as NaN)."""
    return isinstance(cell, str) and bool(cell.strip())


def spans(text) -> list[tuple[str, tuple[float, float]]]:
    """'0:0.1-0.2;1:0.2-0.3' -> [('0', (0.1, 0.2)), ('1', (0.2, 0.3))]; nothing for an empty cell."""
    if not isinstance(text, str) or not text:
        return []
    found = []
    for item in text.split(";"):
        part, _, span = item.partition(":")
        start, _, end = span.partition("-")
        times = float(start), float(end)
        if not all(math.isfinite(t) for t in times):  # as float() fails on text: the caller names the cell
            raise ValueError(f"{item!r} is not a span of finite times")
        found.append((part, times))
    return found
