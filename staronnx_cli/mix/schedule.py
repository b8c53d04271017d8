"""A mix point's arrivals: each model's own stream (its rate, batch size and arrival process), computed before the
run as plain data, then merged into one schedule of batches in release order, each tagged with its model, its
deadline and its priority.

Every model is measured over the same window: the point lasts as long as the slowest-filling model needs for
W + K batches; the others keep arriving at their own rates until then. The window opens when every model's
W warm-up batches have arrived, so the slowest model gets K measured batches and the others more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..load.schedule import BatchSchedule, arrivals, batch_schedule
from ..sweep.point import measured_for, warmup_for
from .spec import Mix


@dataclass(frozen=True)
class MixPoint:
    scale: float
    sizes: tuple[int, ...]  # batch size per model
    rates: tuple[float, ...]  # queries/s per model at this point
    warmup: int
    batches: int
    seed: int = 0


@dataclass(frozen=True)
class MixSchedule:
    times: list[np.ndarray]  # per model: its queries' arrival times
    schedule: BatchSchedule  # every model's batches, in release order
    window_start_s: float  # when every model's warm-up batches have arrived: measurement starts
    duration_s: float  # when the slowest model's last batch has arrived

    def firsts(self, records) -> list[int]:
        """Per model, the index (among its own batches) of its first measured batch."""
        out = []
        for m in range(len(self.times)):
            mine = [r for r in records if r.model == m]
            out.append(next((i for i, r in enumerate(mine) if r.first_arrival_s >= self.window_start_s), len(mine)))
        return out


def rates_at(mix: Mix, scale: float, vary: str | None) -> tuple[float, ...]:
    """Each model's rate at a scale: all of them multiplied, or only `vary`'s (the others at their own)."""
    return tuple(m.rate_qps * scale if vary in (None, m.name) else m.rate_qps for m in mix.models)


def model_batches(warmup: int, batches: int, batch_size: int, rate_qps: float) -> tuple[int, int]:
    """A model's own W and K in a mix point: those asked for, or as many as span a single sweep's least warm-up and
    measurement (2 and 5 ms) if more."""
    return warmup_for(warmup, rate_qps, batch_size), measured_for(batches, rate_qps, batch_size)


def fill_seconds(warmup: int, batches: int, sizes: tuple[int, ...], rates: tuple[float, ...]) -> float:
    """How long a mix point's queries take to arrive: its slowest-filling model's W + K batches."""
    return max(sum(model_batches(warmup, batches, n, r)) * n / r for n, r in zip(sizes, rates))


def mix_schedule(mix: Mix, point: MixPoint) -> MixSchedule:
    duration = fill_seconds(point.warmup, point.batches, point.sizes, point.rates)
    times, schedules, warm = [], [], []
    for m, (model, n, rate) in enumerate(zip(mix.models, point.sizes, point.rates)):
        w, k = model_batches(point.warmup, point.batches, n, rate)
        count = max(w + k, math.floor(duration * rate / n + 1e-9))
        times.append(arrivals(model.arrival, rate, count * n, point.seed + m, [w * n, k * n]))
        schedules.append(batch_schedule(times[-1], n))
        warm.append(w)
    window = max(float(s.first_arrival_s[min(w, s.batches - 1)]) for s, w in zip(schedules, warm))
    release = np.concatenate([s.release_s for s in schedules])
    order = np.argsort(release, kind="stable")  # ties: the model listed first
    models = np.concatenate([np.full(s.batches, m) for m, s in enumerate(schedules)])
    first = np.concatenate([s.first_arrival_s for s in schedules])
    targets = [math.inf if m.target_ms is None else m.target_ms / 1000 for m in mix.models]
    merged = BatchSchedule(
        max(point.sizes), first[order], release[order], np.concatenate([s.sizes for s in schedules])[order],
        np.concatenate([s.first_query for s in schedules])[order], models[order],
        first[order] + np.array(targets)[models[order]], np.array([m.priority for m in mix.models])[models[order]])
    return MixSchedule(times, merged, window, float(duration))
