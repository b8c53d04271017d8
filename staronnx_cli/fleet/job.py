"""One fleet job, on the node Ray gave it: the sweep run into a temporary directory there (no shared file system),
each point's rows sent to the driver as soon as the point is committed, so a node lost mid-sweep loses at most the
point it was measuring. A job resumed elsewhere starts from the files the driver holds."""

from __future__ import annotations

import csv
import io
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from ..results.rundir import RunDir
from ..results.schema import RUN_FILES
from .campaign import SweepSpec

RUN_JSON, POINTS, BATCHES = RUN_FILES
PROGRESS_EVERY_S = 1.0


def run_job(key: str, spec: SweepSpec, shipped: dict[str, bytes], held: dict[str, str], inbox, attempt: int,
            kind: str) -> dict[str, Any]:
    """Run the job; each committed point goes to `inbox` as ("point", key, run.json, point rows, batch rows, the
    Ray node it runs on, (attempt, its number in this attempt)): the inbox may hand them over out of order.
    Returns where and when it ran, and the final run.json."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="staronnx-fleet-") as tmp:
        here = Path(tmp)
        for name, data in shipped.items():  # the target (a model or a plan's files) and a platform, if any
            (here / name).parent.mkdir(parents=True, exist_ok=True)
            (here / name).write_bytes(data)
        run = here / "run"
        run.mkdir()
        for name, text in held.items():
            (run / name).write_text(text)
        if "target.onnx" in shipped:
            target = here / "target.onnx"
        elif any(n.startswith("target/") for n in shipped):
            target = here / "target"  # a plan's directory
        else:  # a zoo model: built there, from its seed (the same bytes on every node)
            from ..zoo.cache import build_cached

            target = build_cached(spec.target)[0]
        samples = next((here / n for n in shipped if n.startswith("input_data/")), None)  # the job's samples file
        settings = spec.settings(target, run, here / "platform.toml" if spec.platform else None, resume=bool(held),
                                 input_data=samples)
        tails = {name: _Tail(run / name) for name in (POINTS, BATCHES)}  # what the driver already holds is skipped
        sent = [0]

        def on_point(row: dict) -> None:
            new_points = tails[POINTS].new_rows()
            if new_points:  # a mix point's rows arrive in one call: the first sends them all
                # not waited for (Ray lends a waiting task's CPU to another task); sent in order, as one caller's
                inbox.actor.put_nowait.remote(("point", key, (run / RUN_JSON).read_text(), new_points,
                                               tails[BATCHES].new_rows(), node, (attempt, sent[0])))
                sent[0] += 1

        told = [0.0]

        def on_progress(p) -> None:  # the seconds of arrivals done and planned: the campaign's ETA (once a second)
            if time.monotonic() - told[0] >= PROGRESS_EVERY_S:
                told[0] = time.monotonic()
                inbox.actor.put_nowait.remote(("progress", key, p.seconds_done, p.seconds_total, attempt))

        from ..sweep.runner import run_sweep

        run_sweep(settings, on_point=on_point, on_progress=on_progress)  # what it raises, the driver says
        ray.get(inbox.actor.qsize.remote())  # after this caller's puts: every point is in the inbox before the end
        where = {"kind": kind, "ray_node_id": node, "host": platform.node(), "attempt": attempt,
                 "started": started, "ended": time.time()}
        RunDir(run).update_meta(lambda meta: meta.with_recorded({"fleet": where}))
        return {**where, "run_json": (run / RUN_JSON).read_text(), "points_sent": sent[0]}


class _Tail:
    """The rows appended to a result file since it was last read (read from where it stopped, not again from the
    start: a simulated sweep writes tens of thousands of batch rows)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0
        self.header: list[str] | None = None
        self.new_rows()

    def new_rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(complete)
        lines = complete.decode().splitlines(keepends=True)
        if self.header is None and lines:
            self.header, lines = next(csv.reader(io.StringIO(lines[0]))), lines[1:]
        return list(csv.DictReader(io.StringIO("".join(lines)), fieldnames=self.header)) if lines else []


def held_files(run: Path) -> dict[str, str]:
    """What the driver holds of a job: its run.json and complete rows (nothing for a job never begun)."""
    if not (run / POINTS).exists() or not (run / RUN_JSON).exists():
        return {}
    from ..results.schema import complete_text

    return {name: complete_text(run / name) if name != RUN_JSON else (run / name).read_text()
            for name in RUN_FILES if (run / name).exists()}
