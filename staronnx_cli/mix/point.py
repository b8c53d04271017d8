"""One mix point: every model's batches through one scheduler on the shared workers, then one points.csv row and
the batches.csv rows per model, each judged on its own batches (the workers' busy time counts every model's)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ..analysis.mix import meets_target
from ..metrics.points import capacity_qps
from ..runtime.scheduler import BatchRecord, Limits
from ..sweep.point import PointJudge, PointSpec, batch_rows, point_row, stream_backlog, time_cap_s
from .schedule import MixPoint, MixSchedule, mix_schedule, model_batches
from .spec import Mix, combination_label


def run_mix_point(mix: Mix, point: MixPoint, engine, executor, policy, graph, services: list[list[float]],
                  on_batch=None) -> tuple[MixSchedule, list[BatchRecord], str]:
    """Run the point; returns its schedule, the records and why it stopped ('' when every batch ran): a stop
    names the model whose latency rose, or says the backlog / time cap was reached."""
    planned = mix_schedule(mix, point)
    loop = engine.loop_factory()
    executor.loop = loop
    runner = engine.runner(loop, executor, policy, graph)
    workers = len(engine.workers)
    # each model's early-stop test on its measured batches only (the conservative trend test of a single sweep)
    judges = [PointJudge(PointSpec(n, r, 0, point.batches, extensions=0)) for n, r in zip(point.sizes, point.rates)]

    def watch(record: BatchRecord) -> str:
        if on_batch is not None:
            on_batch(record)
        if record.first_arrival_s < planned.window_start_s:
            return ""
        why = judges[record.model].watch(record)
        return f"{mix.models[record.model].name}: {why}" if why else ""

    records, stop = runner.run(planned.schedule, mix_limits(mix, point, planned, services, workers), watch)
    return planned, records, stop


def mix_limits(mix: Mix, point: MixPoint, planned: MixSchedule, services: list[list[float]], workers: int) -> Limits:
    """The models' backlog bounds summed, each as a single sweep of that stream would have it (a model's random
    bursts are not congestion); the time cap on the slowest-filling model's schedule."""
    merged = planned.schedule
    bound = sum(stream_backlog(workers, s, merged.release_s[merged.models == m],
                               sum(model_batches(point.warmup, point.batches, n, r)), r / n,
                               mix.models[m].arrival != "fixed")
                for m, (s, n, r) in enumerate(zip(services, point.sizes, point.rates)))
    return Limits(max_backlog=bound, time_cap_s=time_cap_s(planned.duration_s))


def culprit(mix: Mix, records: list[BatchRecord], stop: str, loads: Sequence[float] = ()) -> int | None:
    """The model a stop is blamed on: the one it names, else the one whose offered load takes the largest share of
    the workers (`loads`: each model's rate over its capacity N * sum(1 / S_w(N)), where known: a share of batches
    unfinished blamed a model with 1 of 2 batches waiting beside one offering 1.6 times what the workers serve),
    else the one with the largest share of its released batches unfinished when the point stopped (at its last
    release); None when the point ran to its end."""
    if not stop:
        return None
    for m, model in enumerate(mix.models):
        if stop.startswith(f"{model.name}: "):
            return m
    if len(loads) == len(mix.models) and all(math.isfinite(x) and x > 0 for x in loads):
        return max(range(len(mix.models)), key=lambda m: loads[m])
    released = [r for r in records if math.isfinite(r.actual_release_s)]
    stopped_at = max((r.actual_release_s for r in released), default=0.0)  # the last release: where it stopped
    unfinished = [0.0] * len(mix.models)
    for m in range(len(mix.models)):  # unfinished then (the batches in flight were run to their end after it)
        mine = [r for r in released if r.model == m]
        if mine:
            unfinished[m] = sum(not r.end_s <= stopped_at for r in mine) / len(mine)
    return max(range(len(mix.models)), key=lambda m: unfinished[m])


def mix_rows(mix: Mix, point: MixPoint, ran: tuple[MixSchedule, list[BatchRecord], str], worker_names: list[str],
             services: list[list[float]], label: dict, graph_first_part: list[int]) -> tuple[list[dict], list[dict]]:
    """(points.csv rows, batches.csv rows), one point row per model, of what `run_mix_point` returned (`ran`: the
    schedule, the records, why it stopped). A model's row is congested when the point stopped: with its own
    reason if the stop is its doing, else saying which model stopped it."""
    planned, records, stop = ran
    capacities = [capacity_qps(n, mine) for n, mine in zip(point.sizes, services)]
    blamed = culprit(mix, records, stop, [rate / c if c > 0 else math.nan for rate, c in zip(point.rates, capacities)])
    firsts = planned.firsts(records)
    combination = combination_label(mix, point.sizes)
    point_rows, batch_out = [], []
    for m, model in enumerate(mix.models):
        mine = [r for r in records if r.model == m]
        spec = PointSpec(point.sizes[m], point.rates[m], firsts[m], point.batches, model.arrival, None, point.seed,
                         extensions=0)
        own_stop = "" if blamed is None else stop.removeprefix(f"{model.name}: ") if blamed == m else \
            f"stopped with {mix.models[blamed].name}: {stop.removeprefix(f'{mix.models[blamed].name}: ')}"
        row = point_row(spec, mine, own_stop, planned.times[m], worker_names, services[m], firsts[m],
                        shared_with=records)
        latency = row.get("mean_max_latency_ms")
        met = "" if model.target_ms is None else meets_target(
            row["congested"], latency if isinstance(latency, float) else None, model.target_ms)
        extra = {"model": model.name, "scale": point.scale, "mix": combination,
                 "latency_target_ms": "" if model.target_ms is None else model.target_ms, "met_target": met}
        point_rows.append({**label, **row, **extra})
        first_part = graph_first_part[m]
        own = [replace(r, index=i, tasks=[t._replace(part=t.part - first_part) for t in r.tasks])
               for i, r in enumerate(mine)]  # numbered as in a single model's run: its batches, its parts
        batch_out += [{"system": label["system"], **b, "model": model.name, "scale": point.scale, "mix": combination}
                      for b in batch_rows(spec, own, worker_names, firsts[m])]
    return point_rows, batch_out
