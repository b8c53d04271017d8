"""Before the points of a batch size: each worker kind's S_w(N) alone, and performance models calibrated there.

StarPU calibrates a (task, worker kind, size) on its first executions. Done inside a measured point, that puts
a slow worker's first batches into the measured latencies and makes dmda choose a kind because it is
unknown, not because it is fast (on an H100 the 15-core CPU worker ran inside the first measured point of
every batch size: latency 1.3-1.7x the ideal there). So here every worker kind runs batches alone, through
every part, enough times to calibrate each (part, kind, N) that is not (the first sample is dropped); the
median batch time of those runs is the kind's S(N), which the ideal and the capacity of a point use.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

from ..metrics.spread import relative_spread
from .executors import part_range
from .perfmodel import CALIBRATION_SAMPLES, PerfModel
from .workers import WorkerSpec

SERVICE_RUNS = 10


@dataclass(frozen=True)
class Calibration:
    """What one worker kind ran alone before the points of a batch size (run.json keeps these)."""

    batch_size: int
    kind: str
    runs: int
    seconds: float  # how long it took (wall clock; the simulator's bookkeeping in simulation)
    calibrated: bool  # whether these runs calibrated the kind's performance models (else: only S(N))
    service_ms: float
    spread: float | None = None  # (75th - 25th percentile) / median of the runs' times; None: no spread measured
    part_ms: dict[int, float] | None = None  # each part's median time in these runs (platform from-run reads them)

    def to_json(self) -> dict:
        def rounded(v):
            return round(v, 4) if isinstance(v, float) else {str(k): rounded(x) for k, x in v.items()} \
                if isinstance(v, dict) else v

        return {k: rounded(v) for k, v in asdict(self).items() if v is not None}



def measure_workers(executor, workers: list[WorkerSpec], perf: PerfModel, n: int, parts: int | range,
                    learn: bool = True) -> tuple[list[float], list[Calibration]]:
    """S_w(N) of every worker (one measurement per worker kind) and the calibration each kind needed; `parts`: the
    model's count of parts, or a mix's model's range of them."""
    by_kind: dict[str, float] = {}
    log = []
    for w, spec in enumerate(workers):
        kind = spec.kind_key
        if kind in by_kind:
            continue
        needed = learn and any(not perf.calibrated(part, kind, n) for part in part_range(parts))
        runs = max(SERVICE_RUNS, CALIBRATION_SAMPLES + 1) if needed else SERVICE_RUNS

        seen: dict[int, list[float]] = {}

        def on_task(part: int, seconds: float, kind=kind, needed=needed, seen=seen) -> None:
            seen.setdefault(part, []).append(seconds)
            if needed:
                perf.record(part, kind, n, seconds)

        started = time.perf_counter()
        by_kind[kind] = executor.service_time(w, n, parts, runs=runs, on_task=on_task)
        spread = relative_spread(executor.service_samples)
        part_ms = {p: 1000 * statistics.median(s) for p, s in sorted(seen.items())} or None
        log.append(Calibration(n, kind, runs, time.perf_counter() - started, needed, 1000 * by_kind[kind], spread,
                               part_ms))
    return [by_kind[w.kind_key] for w in workers], log
