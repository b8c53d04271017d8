"""`sweep --mix`: the mix's batch-size combinations x scales, one point at a time, on one runtime for every model;
each point's rows (one per model) appended as soon as it finishes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from ..dirlock import run_lock
from ..errors import UserError
from ..results.rundir import RunDir
from ..runtime.policies import make_policy
from ..sweep.checks import arrival_notes, check_settings, check_target_data, output_notes
from ..sweep.grid import MAX_QPS
from ..sweep.orchestrator import run_grid
from ..sweep.progress import SweepProgress
from ..sweep.runner import Prepared, prepare_engine, prepared_run, run_metadata
from ..sweep.settings import SweepSettings
from ..systems import BatchSizeSetup, policy_of
from ..systems.target import load_target, mix_target
from .memory import check_memory_limits, parse_memory_limits
from .point import mix_rows, run_mix_point
from .schedule import MixPoint, fill_seconds, rates_at
from .spec import Mix, MixModel, combination_label


@dataclass
class MixSettings:
    """A mix's sweep: the sweep's own settings (workers, policy, batches, engine, -o, ...) and what only a mix has."""

    sweep: SweepSettings
    mix: Mix
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    vary: str | None = None  # only this model's rate is scaled
    memory_limit: str | None = None  # --memory-limit as given


def prepare_mix(s: MixSettings, resolve=lambda source, shape: source) -> Prepared:
    """Everything a user can get wrong in a mix, refused in one line before any point. `resolve(source, shape)`: a
    model's path (zoo names built on first use; with a shape, the copy with those sizes)."""
    mix, sw = s.mix, s.sweep
    check_settings(sw)
    make_policy(sw.policy)
    if s.vary is not None:
        mix.index(s.vary)
    if sw.arrival != "fixed" or sw.max_queue_delay_ms is not None:
        raise UserError("--arrival is set per model in a mix (arrival = ...), and a mix batches as the paper does "
                        "(no --max-queue-delay): drop them")
    target = mix_target([(model.name, _loaded(mix, model, resolve)) for model in mix.models])
    for model, member in zip(mix.models, target.members):
        check_target_data(model.input_data, member.target, f"mix model '{model.name}'")
    engine, policy = prepare_engine(sw, target, mix)
    memory_limits = parse_memory_limits(s.memory_limit, engine.workers)
    if memory_limits:  # the engine built again with them: GPU sessions' arenas within each worker's budget
        engine, policy = prepare_engine(sw, target, mix, memory_limits)
    check_memory_limits(memory_limits, target, [max(m.batch_sizes) for m in mix.models])
    top = max(s.scales) * max(m.rate_qps for m in mix.models)
    if not top <= MAX_QPS:  # inf, or more than any machine serves
        raise UserError(f"--scale {max(s.scales):g}: the mix's fastest model would arrive at {top:.3g} q/s, more "
                        f"than any machine serves (at most {MAX_QPS:g}): lower --scale")
    if sw.engine == "real":
        hours = sum(mix_seconds(mix, sizes, scale, s) for sizes in mix.combinations() for scale in s.scales) / 3600
        if hours > sw.max_hours:
            raise UserError(f"this mix's queries alone take {hours:.3g} h to arrive, more than --max-hours "
                            f"{sw.max_hours:g}: lower --batches, raise the rates or the lowest --scale, or raise "
                            "--max-hours")
    meta = replace(run_metadata(sw, target, engine), mix={"file": str(mix.path), "models": [
        {"name": m.name, "source": m.source, "model_sha256": mem.target.model_sha256,
         "plan_sha256": mem.target.plan_sha256, "parts": len(mem.target.part_files), "rate_qps": m.rate_qps,
         "batch_sizes": list(m.batch_sizes), "target_ms": m.target_ms, "priority": m.priority, "arrival": m.arrival,
         "input_data": m.input_data.words()}
        for m, mem in zip(mix.models, target.members)]}, scales=list(s.scales), vary=s.vary,
        memory_limits=memory_limits, input_data="; ".join(f"{m.name}: {m.input_data.words()}" for m in mix.models)
        if any(m.input_data.source != "random" for m in mix.models) else "random")
    if sw.resume and not sw.force and (sw.output / "run.json").exists() and (sw.output / "points.csv").exists():
        old = RunDir(sw.output).read_meta()
        if not old.get("mix"):
            raise UserError(f"--resume: '{sw.output}' is one model's run, not a mix's: sweep the mix into a new -o")
        for key, what in (("mix", "a different mix (models, rates, batch sizes, targets, priorities or input data)"),
                          ("vary", "another --vary")):
            if _without_file(old.get(key)) != _without_file(meta.get(key)):
                raise UserError(f"--resume: '{sw.output}' was measured with {what}: use the same mix and options, a "
                                "new -o, or --force")
    random = next((m for m in mix.models if m.arrival != "fixed"), None)  # one note for the mix
    notes = [] if random is None else arrival_notes(replace(sw, arrival=random.arrival),
                                                    f'{random.name}\'s arrival = "{random.arrival}" in {mix.path.name}')
    return prepared_run(sw, target, engine, policy, meta, output_notes(sw) + notes)


def _loaded(mix: Mix, model: MixModel, resolve):
    """A mix's model as a target, each mistake one line naming the model (and the mix's shape key)."""
    from pathlib import Path

    try:
        if model.shape and Path(model.source).is_dir():
            raise UserError("shape applies to a model: a plan's parts have the sizes split gave them")
        path = Path(resolve(model.source, list(model.shape)))
    except UserError as exc:
        raise UserError(f"mix '{mix.path}' model '{model.name}': {exc}") from None
    if not path.exists():
        raise UserError(f"mix '{mix.path}' model '{model.name}': '{model.source}' is neither a file, a plan "
                        "directory nor a zoo model ('staronnx zoo list' names them)")
    try:
        return load_target(path)
    except UserError as exc:  # a free sequence length: the mix's own key gives it
        where = " (in a mix: shape = [\"INPUT:SIZES\"] in its [[model]])" if "--shape" in str(exc) else ""
        raise UserError(f"mix '{mix.path}' model '{model.name}': {exc}{where}") from None


def _without_file(value):
    """A mix as recorded, less the path it was read from (the same file named another way is the same mix); a
    model recorded before input_data was fed random inputs."""
    if not isinstance(value, dict):
        return value
    models = [{"input_data": "random", **m} if isinstance(m, dict) else m for m in value.get("models") or []]
    return {**{k: v for k, v in value.items() if k != "file"}, "models": models}


def mix_seconds(mix: Mix, sizes: tuple[int, ...], scale: float, s: MixSettings) -> float:
    """How long a point's queries take to arrive: its slowest-filling model's W + K batches."""
    return fill_seconds(s.sweep.warmup, s.sweep.batches, sizes, rates_at(mix, scale, s.vary))


def run_mix(s: MixSettings, prepared: Prepared, on_point=lambda row: None, on_progress=lambda progress: None,
            on_notice=lambda text: None) -> list[dict]:
    with run_lock(s.sweep.output):
        return _sweep_mix(s, prepared, on_point, on_progress, on_notice)


def _sweep_mix(s: MixSettings, prepared: Prepared, on_point, on_progress, on_notice) -> list[dict]:
    return run_grid(s.sweep, prepared.engine, prepared.meta, MixGrid(s, prepared, on_notice), on_point, on_progress,
                    on_notice)


class MixGrid:
    """A mix's grid: its batch-size combinations, each at the scales; a point measures every model at once and
    commits one row per model. After a congested scale the higher ones are recorded as not run; a combination
    whose targets no rate can meet records its points as not run (a single combination: one line, exit 2)."""

    def __init__(self, s: MixSettings, prepared: Prepared, on_notice):
        self.s, self.prepared, self.on_notice = s, prepared, on_notice
        engine = prepared.engine
        self.label = {"system": s.sweep.system, "engine": engine.name, "policy": policy_of(s.sweep),
                      "workers": engine.workers_label()}
        self.rows_per_point = len(s.mix.models)  # a point commits every model's row at once
        self.done_before: set[tuple[str, float]] = set()  # read once the run directory is repaired (plan)
        self.plans: dict = {}

    def plan(self, progress: SweepProgress) -> None:
        self.done_before = _done(self.s) if self.s.sweep.resume else set()
        self.plans = _plans(self.s, self.done_before, progress)

    def setups(self) -> list[tuple[int, ...]]:
        return self.s.mix.combinations()

    def wanted(self, sizes: tuple[int, ...]) -> bool:
        return any((combination_label(self.s.mix, sizes), scale) not in self.done_before for scale in self.s.scales)

    def blocked(self, sizes: tuple[int, ...], setup: BatchSizeSetup) -> str:
        unreachable = check_targets(self.s.mix, sizes, setup.services_s)
        if unreachable and len(self.s.mix.combinations()) == 1:
            raise UserError(unreachable)
        if unreachable:  # other combinations may meet it: this one's points are recorded as not run
            self.on_notice(unreachable)
        return f"not run: {unreachable}" if unreachable else ""

    def points(self, sizes: tuple[int, ...], setup: BatchSizeSetup) -> Iterator[float]:
        return iter([scale for scale in self.s.scales
                     if (combination_label(self.s.mix, sizes), scale) not in self.done_before])

    def skipped(self, sizes: tuple[int, ...], scale: float, congested_at: float | None) -> str:
        return "" if congested_at is None else f"not run: the mix was already congested at scale {congested_at:g}"

    def start(self, sizes: tuple[int, ...], scale: float, progress: SweepProgress) -> None:
        _, count, seconds = self.plans[(sizes, scale)]
        progress.start(f"{combination_label(self.s.mix, sizes)} at scale {scale:g}", count, seconds)

    def measure(self, sizes: tuple[int, ...], scale: float, setup: BatchSizeSetup,
                progress: SweepProgress) -> list[dict]:
        point = self.plans[(sizes, scale)][0]
        return _measure(self.s, self.prepared, point, setup, self.label, lambda _: progress.batch())

    def not_run(self, sizes: tuple[int, ...], scale: float, why: str, failure: str) -> list[dict]:
        point = self.plans[(sizes, scale)][0]
        return _not_run_rows(self.s.mix, point, self.label,
                             "failed: workers could not run these batch sizes" if failure else why, failure)

    def done(self, sizes: tuple[int, ...], scale: float, rows: list[dict]) -> None:
        pass


def _plans(s: MixSettings, done: set, progress: SweepProgress) -> dict:
    """(sizes, scale) -> (the point, its batches, the seconds they take to arrive); the progress bar told of every
    point, those done before a resume already finished."""
    mix, plans = s.mix, {}
    for sizes in mix.combinations():
        for scale in s.scales:
            point = MixPoint(scale, sizes, rates_at(mix, scale, s.vary), s.sweep.warmup, s.sweep.batches, s.sweep.seed)
            seconds = mix_seconds(mix, sizes, scale, s)
            count = sum(int(seconds * r / n) for n, r in zip(sizes, point.rates)) or 1
            plans[(sizes, scale)] = (point, count, seconds)
            progress.add(count, seconds)
            if (combination_label(mix, sizes), scale) in done:
                progress.start("", count, seconds)
                progress.finish()
    return plans


def _measure(s: MixSettings, prepared: Prepared, point: MixPoint, setup, label: dict, on_batch) -> list[dict]:
    """One mix point run; its batch rows appended, its point rows (one per model) returned for the commit."""
    engine, target = prepared.engine, prepared.target
    services = [list(x) for x in setup.services_s]
    ran = run_mix_point(s.mix, point, engine, setup.executor, prepared.policy, target.graph, services,
                        on_batch=on_batch)
    point_rows, batch_rows = mix_rows(s.mix, point, ran, [w.name for w in engine.workers], services, label,
                                      [m.first_part for m in target.members])
    RunDir(s.sweep.output).append_batches(batch_rows)
    return point_rows


def _not_run_rows(mix: Mix, point: MixPoint, label: dict, why: str, failure: str) -> list[dict]:
    """A point not measured, one row per model: failed (the workers could not run its sizes) or congested."""
    return [{**label, "model": m.name, "scale": point.scale, "mix": combination_label(mix, point.sizes),
             "batch_size": n, "rate_qps": r, "batches": 0, "congested": not failure, "reason": why,
             "errors": failure, "latency_target_ms": "" if m.target_ms is None else m.target_ms,
             "met_target": "" if m.target_ms is None else False}
            for m, n, r in zip(mix.models, point.sizes, point.rates)]


def check_targets(mix: Mix, sizes: tuple[int, ...], services) -> str:
    """Why no rate can meet a target at these batch sizes ('' if none): a target below a model's service time on
    the fastest worker alone."""
    for model, n, mine in zip(mix.models, sizes, services or []):
        known = [x for x in (mine or []) if x and x == x]
        if model.target_ms is not None and known and 1000 * min(known) > model.target_ms:
            return (f"mix model '{model.name}': target_ms = {model.target_ms:g} is below its service time at batch "
                    f"{n} ({1000 * min(known):.3g} ms on the fastest worker, alone): no schedule meets it; raise "
                    f"target_ms{' or lower its batch size' if n > 1 else ', or give it faster workers'}")
    return ""


def _done(s: MixSettings) -> set[tuple[str, float]]:
    """(combination, scale) of the points committed for every model."""
    frame = RunDir(s.sweep.output).point_rows()
    if "mix" not in frame:
        return set()
    counts = frame.groupby(["mix", "scale"]).size()
    return {(str(m), float(sc)) for (m, sc), c in counts.items() if c >= len(s.mix.models)}
