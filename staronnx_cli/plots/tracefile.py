"""One point of a run as a Chrome / Perfetto trace (trace-event JSON): a track per worker, a slice per task.

Open it in https://ui.perfetto.dev or chrome://tracing. Timestamps are microseconds from the point's t0.
The load generator has a track of its own with an instant event at each batch release.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..analysis.mix import is_mix, mix_point_batches, pick_mix_point
from ..errors import UserError
from ..outputfile import write_text_atomic
from ..results.read import Run
from ..results.schema import flag
from ..results.tasks import task_table
from .figures import pick_point, run_workers

PID = 1


def trace_events(run: Run, batch_size: int | None, rate: float | None, mix: str | None = None,
                 scale: float | None = None) -> dict:
    """A single-model run's point (N, rate), or a mix run's point (combination, scale): every model's tasks on
    the shared workers, each slice named by its model."""
    if is_mix(run):
        if batch_size is not None or rate is not None:
            raise UserError(f"run '{run.path}' is a mix: choose its point with --mix and --scale, not --batch-size "
                            "and --rate")
        combination, at = pick_mix_point(run, mix, scale)
        mine = mix_point_batches(run, combination, at)
        tasks = pd.concat([task_table(group).assign(model=model) for model, group in mine.groupby("model", sort=False)]
                          or [task_table(mine).assign(model="")], ignore_index=True)
        title, point = f"{combination} at scale {at:g}", {"mix": combination, "scale": at}
    else:
        if mix is not None or scale is not None:
            raise UserError(f"run '{run.path}' is not a mix: choose its point with --batch-size and --rate")
        n, rho = pick_point(run, batch_size, rate)
        batches = run.batches
        mine = batches[(batches.batch_size == n) & (batches.rate_qps == rho)]
        tasks = task_table(mine).assign(model="")
        title, point = f"N={n} at {rho:g} q/s", {"batch_size": n, "rate_qps": rho}
    if tasks.empty:
        how = "--mix and --scale" if "mix" in point else "--batch-size and --rate"
        raise UserError(f"point {title} of '{run.path}' ran no task (its points.csv rows say why: not run, or no batch "
                        f"ran): choose another with {how}")
    workers = run_workers(run, tasks)
    tid = {w: i + 1 for i, w in enumerate(workers)}
    events: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": PID, "tid": 0,
         "args": {"name": f"{run.model_name}: {title} ({run.meta.workers})"}},
        {"ph": "M", "name": "thread_name", "pid": PID, "tid": 0, "args": {"name": "load generator"}},
    ]
    events += [{"ph": "M", "name": "thread_name", "pid": PID, "tid": tid[w], "args": {"name": w}} for w in workers]
    for _, b in mine.iterrows():
        whose = f"{b.model} " if "model" in b and isinstance(b.model, str) and "mix" in point else ""
        warm = " (warm-up)" if not flag(b.get("measured"), missing=True) else ""
        events.append({"ph": "i", "s": "t", "name": f"release {whose}batch {int(b.batch_index)}{warm}", "pid": PID,
                       "tid": 0,
                       "ts": round(1e6 * float(b.actual_release_s), 3),
                       "args": {"scheduled_us": round(1e6 * float(b.scheduled_release_s), 3),
                                "late_us": round(1e6 * (float(b.actual_release_s) - float(b.scheduled_release_s)), 3)}})
    models = mine["model"].fillna("").astype(str) if "mix" in point else pd.Series([""] * len(mine), index=mine.index)
    latency = {key: float(v) if math.isfinite(v) else None  # unfinished when the point stopped: no latency (JSON
               for key, v in zip(zip(models, mine.batch_index.astype(int)), mine.first_query_latency_ms)}  # has no NaN)
    copying = sorted(tasks.dropna(subset=["transfer_start_s"]).worker.unique()) if not tasks.empty else []
    ctid = {w: len(workers) + 1 + i for i, w in enumerate(copying)}  # a track per GPU worker's copy stream
    events += [{"ph": "M", "name": "thread_name", "pid": PID, "tid": ctid[w], "args": {"name": f"{w} copies"}}
               for w in copying]
    for _, t in tasks.dropna(subset=["transfer_start_s"]).iterrows():
        events.append({"ph": "X", "name": f"inputs of {_part(t)}", "cat": "transfer", "pid": PID,
                       "tid": ctid[t.worker], "ts": round(1e6 * t.transfer_start_s, 3),
                       "dur": round(1e6 * (t.transfer_end_s - t.transfer_start_s), 3),
                       "args": {"batch": int(t.batch_index), "part": int(t.part), **_model(t)}})
    for _, t in tasks.iterrows():
        events.append({"ph": "X", "name": _part(t), "cat": "task" if t.measured else "warm-up", "pid": PID,
                       "tid": tid[t.worker], "ts": round(1e6 * t.start_s, 3),
                       "dur": round(1e6 * (t.end_s - t.start_s), 3),
                       "args": {"batch": int(t.batch_index), "part": int(t.part), "measured": bool(t.measured),
                                **_model(t), "batch_latency_ms": latency.get((t.model, int(t.batch_index)))}})
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"run": str(run.path), **point}}


def _part(task) -> str:
    return f"{task.model}: part {int(task.part)}" if task.model else f"part {int(task.part)}"


def _model(task) -> dict:
    return {"model": task.model} if task.model else {}


def is_trace(path: Path) -> bool:
    """Whether `path` holds a trace-event file (one `trace` wrote may be replaced; any other file is refused)."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b'{"traceEvents"')


def write_trace(run: Run, batch_size: int | None, rate: float | None, output: Path, mix: str | None = None,
                scale: float | None = None) -> tuple[Path, str]:
    """The trace file and which point it holds, in words."""
    trace = trace_events(run, batch_size, rate, mix, scale)
    write_text_atomic(output, json.dumps(trace, allow_nan=False) + "\n")  # a NaN would make it no JSON
    point = trace["otherData"]
    return output, (f"'{point['mix']}' at scale {point['scale']:g}" if "mix" in point else
                    f"N={point['batch_size']} at {point['rate_qps']:g} q/s")
