"""One point of a run as a Chrome / Perfetto trace (trace-event JSON): a track per worker, a slice per task.

Open it in https://ui.perfetto.dev or chrome://tracing. Timestamps are microseconds from the point's t0.
The load generator has a track of its own with an instant event at each batch release.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..results.read import Run
from ..results.tasks import task_table
from .figures import pick_point

PID = 1


def trace_events(run: Run, batch_size: int | None, rate: float | None) -> dict:
    n, rho = pick_point(run, batch_size, rate)
    batches = run.batches
    mine = batches[(batches.batch_size == n) & (batches.rate_qps == rho)]
    tasks = task_table(mine)
    workers = sorted(tasks.worker.unique()) if not tasks.empty else []
    tid = {w: i + 1 for i, w in enumerate(workers)}
    events: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": PID, "tid": 0,
         "args": {"name": f"{run.model_name}: N={n} at {rho:g} q/s ({run.meta.workers})"}},
        {"ph": "M", "name": "thread_name", "pid": PID, "tid": 0, "args": {"name": "load generator"}},
    ]
    events += [{"ph": "M", "name": "thread_name", "pid": PID, "tid": tid[w], "args": {"name": w}} for w in workers]
    for _, b in mine.iterrows():
        events.append({"ph": "i", "s": "t", "name": f"release batch {int(b.batch_index)}", "pid": PID, "tid": 0,
                       "ts": round(1e6 * float(b.actual_release_s), 3),
                       "args": {"scheduled_us": round(1e6 * float(b.scheduled_release_s), 3),
                                "late_us": round(1e6 * (float(b.actual_release_s) - float(b.scheduled_release_s)), 3)}})
    latency = dict(zip(mine.batch_index.astype(int), mine.first_query_latency_ms))
    copying = sorted(tasks.dropna(subset=["transfer_start_s"]).worker.unique()) if not tasks.empty else []
    ctid = {w: len(workers) + 1 + i for i, w in enumerate(copying)}  # a track per GPU worker's copy stream
    events += [{"ph": "M", "name": "thread_name", "pid": PID, "tid": ctid[w], "args": {"name": f"{w} copies"}}
               for w in copying]
    for _, t in tasks.dropna(subset=["transfer_start_s"]).iterrows():
        events.append({"ph": "X", "name": f"inputs of part {int(t.part)}", "cat": "transfer", "pid": PID,
                       "tid": ctid[t.worker], "ts": round(1e6 * t.transfer_start_s, 3),
                       "dur": round(1e6 * (t.transfer_end_s - t.transfer_start_s), 3),
                       "args": {"batch": int(t.batch_index), "part": int(t.part)}})
    for _, t in tasks.iterrows():
        events.append({"ph": "X", "name": f"part {int(t.part)}", "cat": "task", "pid": PID, "tid": tid[t.worker],
                       "ts": round(1e6 * t.start_s, 3), "dur": round(1e6 * (t.end_s - t.start_s), 3),
                       "args": {"batch": int(t.batch_index), "part": int(t.part),
                                "batch_latency_ms": latency.get(int(t.batch_index))}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"run": str(run.path), "batch_size": n, "rate_qps": rho}}


def write_trace(run: Run, batch_size: int | None, rate: float | None, output: Path) -> tuple[Path, int, float]:
    trace = trace_events(run, batch_size, rate)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(trace) + "\n")
    return output, trace["otherData"]["batch_size"], trace["otherData"]["rate_qps"]
