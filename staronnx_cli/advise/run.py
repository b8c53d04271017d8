"""`advise` from settings to files: the machine's layouts and the model's targets, the search in simulation, the
top candidates confirmed for real, the advice written. Every mistake is one line before anything runs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..analysis.verdict import qps
from ..errors import UserError
from ..inputdata import RANDOM, InputData
from ..rayproc import need_ray
from ..runtime.platform import read_platform
from .answer import draw, recommendations, write_candidates, write_curves, write_markdown
from .confirm import (
    Confirmed,
    far_from_predicted,
    keep_most_headroom,
    measure,
    measure_on_cluster,
    predict_saturation,
    top_candidates,
)
from .earlier import EarlierRuns, drop_set_aside, mark_layout
from .reasons import compare_layouts, markdown_lines
from .search import SearchResult, SearchSettings, process_pool, search
from .space import BATCH_SIZES, OFFLOADS, PARTS, POLICIES, STREAMS, Target, machine_layouts
from .times import falling_times

MAX_PARTS = 8  # more parts than this cut a model into tasks too small to schedule
CONFIRM_WARMUP = 3  # warm-up batches of each real confirmation point
CONFIRM_SETUP_S = 5.0  # a confirmation sweep's own start: sessions loaded, worker kinds calibrated


@dataclass
class AdviseSettings:
    model: Path
    output: Path
    rates: tuple[float, ...]
    model_name: str = ""
    latency_bound_ms: float | None = None
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    offloads: tuple[float, ...] = OFFLOADS
    parts: tuple[int, ...] = PARTS  # of each split: a chain of 2, or 3, parts
    policies: tuple[str, ...] = POLICIES
    platform: Path | None = None
    trust_platform: bool = False  # use a platform's times on a target whose sha256 differs (the same split made again)
    budget_s: float = 600.0  # the whole run: calibration, search and real confirmation
    max_layouts: int = 64  # of a platform file's worker groups: every distinct subset is a layout
    batches: int = 50  # per simulated point
    warmup: int = 5
    confirm: bool = True
    confirm_batches: int = 30
    recalibrate: bool = False  # this host's cached task times of the targets dropped: calibrated afresh
    jobs: int = 0  # 0: this machine's usable cores
    ray: bool = False  # simulate on a Ray cluster instead of a local process pool
    ray_address: str | None = None  # None: a Ray instance started on this machine
    seed: int = 0
    force: bool = False
    command: str = ""
    streams: tuple[int, ...] = STREAMS  # a branch plan per count of streams (none: empty)
    input_data: InputData = RANDOM  # what the model is fed when profiled, split, calibrated and confirmed


@dataclass
class Advice:
    recommendations: list[dict]
    result: SearchResult
    confirmed: list[Confirmed]
    files: list[Path] = field(default_factory=list)


MIN_RATE = 0.01  # queries/s: one query every 100 s


def check(s: AdviseSettings) -> None:
    _check_paths(s)
    _check_numbers(s)
    if s.input_data.is_file:  # a samples file that does not fit the model: before the profile and the splits
        from ..sweep.checks import check_target_data
        from ..systems.target import load_target

        check_target_data(s.input_data, load_target(s.model))
    if s.ray:  # before the profile and the splits, minutes on a large model
        need_ray("--ray", "drop --ray to search on a local process pool")
    if s.platform is not None and s.recalibrate:
        raise UserError(f"--recalibrate measures this host's task times afresh, and --platform {s.platform} gives "
                        "them from its file: drop one")
    if s.platform is not None:
        platform, _, _, _ = platform_for(s)  # its mistakes too, before anything runs
        count_layouts(platform.workers, s.max_layouts, s.platform)
    elif s.confirm:
        floor = confirm_floor_s(s)
        if floor > s.budget_s:
            slowest = min(s.rates)
            raise UserError(f"--budget-s {s.budget_s:g}: confirming for real alone takes at least "
                            f"{f'{floor:,.0f}' if floor >= 10 else f'{floor:.2g}'} s "
                            f"({CONFIRM_WARMUP + s.confirm_batches} batches of N={min(s.batch_sizes)} per point, "
                            f"{qps(slowest)} q/s the slowest rate): raise --budget-s, lower --confirm-batches, or add "
                            "--no-confirm")
    if (s.output / "advice.md").exists() and not s.force:
        raise UserError(f"'{s.output}' holds an advice already: add --force to replace it, or choose another -o")


def _check_paths(s: AdviseSettings) -> None:
    """The model (a model, or a plan with its platform) and -o (a folder of advise's own)."""
    if not s.model.exists():
        raise UserError(f"'{s.model}' is neither a file nor a zoo model: give an .onnx file or a zoo name "
                        "(staronnx zoo list)")
    if s.model.is_dir() and not (s.model / "plan.json").is_file():
        raise UserError(f"'{s.model}' is a folder but not a plan directory (no plan.json): give a model (.onnx or a "
                        "zoo name), or a plan made with 'staronnx split'")
    if s.model.is_dir() and s.platform is None:
        raise UserError(f"'{s.model}' is a plan directory: advise splits the model itself, so give the model; a "
                        "plan goes with --platform (a platform captured from a run of that plan)")
    if s.output.exists() and not s.output.is_dir():
        raise UserError(f"-o {s.output} is a file: advise writes a folder (advice.md, candidates.csv): choose another "
                        "-o")
    for marker, what in (("plan.json", "a plan directory"), ("points.csv", "a run directory")):
        if (s.output / marker).exists():  # its files would be mixed with the advice's
            raise UserError(f"-o {s.output} is {what}: advise writes a folder of its own; choose another -o")
    if s.trust_platform and s.platform is None:
        raise UserError("--trust-platform vouches for a platform file's times: give --platform P.toml too")
    if s.ray_address and not s.ray:
        raise UserError(f"--ray-address {s.ray_address}: add --ray to search on that cluster")


def _check_numbers(s: AdviseSettings) -> None:
    """Rates, the space's lists and the run's counts, each in its range."""
    if not s.rates:
        raise UserError("advise needs the target rate(s): give --rate R (queries/s), e.g. --rate 40,80")
    bad = [r for r in s.rates if not (math.isfinite(r) and r > 0)]
    if bad:
        raise UserError(f"--rate {bad[0]:g}: a rate is a positive number of queries per second")
    slow = [r for r in s.rates if r < MIN_RATE]
    if slow:  # its batches would take days to arrive, and its simulated gaps underflow
        raise UserError(f"--rate {slow[0]:g}: advise answers for rates of at least {MIN_RATE:g} queries per second")
    if any(n < 1 for n in s.batch_sizes) or not s.batch_sizes:
        raise UserError("--batch: batch sizes are whole numbers from 1, e.g. --batch 1,2,4,8")
    if any(not 0 < f < 1 for f in s.offloads):
        raise UserError("--offload: fractions strictly between 0 and 1 (e.g. 0.05,0.1,0.15), or 0 for no split")
    if any(k < 2 for k in s.streams):
        raise UserError("--streams: a branch plan runs at least 2 streams (e.g. --streams 2,4), or 0 for none")
    if any(not 2 <= n <= MAX_PARTS for n in s.parts) or not s.parts:
        raise UserError(f"--parts: each split is a chain of 2 to {MAX_PARTS} parts, e.g. --parts 2,3")
    if s.latency_bound_ms is not None and not (math.isfinite(s.latency_bound_ms) and s.latency_bound_ms > 0):
        raise UserError(f"--latency-bound {s.latency_bound_ms:g}: a bound is a positive number of ms")
    if not (math.isfinite(s.budget_s) and s.budget_s > 0):
        raise UserError(f"--budget-s {s.budget_s:g}: give the seconds the whole advise may take, e.g. 600")
    if s.confirm_batches < 2:  # a sweep's point measures at least 2 batches
        raise UserError(f"--confirm-batches {s.confirm_batches}: give at least 2 (or --no-confirm)")
    if s.batches < 2:
        raise UserError(f"--batches {s.batches}: each simulated point measures at least 2 batches")
    if s.jobs < 0:
        raise UserError(f"--jobs {s.jobs}: give a number of processes (0 or none: one per core)")
    if s.max_layouts < 1:
        raise UserError(f"--max-layouts {s.max_layouts}: give at least 1")
    if not s.policies:
        raise UserError(f"--policy: give at least one of {', '.join(POLICIES)}")
    unknown = [p for p in s.policies if p not in POLICIES]
    if unknown:
        raise UserError(f"--policy {unknown[0]}: advise compares {', '.join(POLICIES)}")


def confirm_floor_s(s: AdviseSettings) -> float:
    """The least real confirmation can take: one point per rate at the smallest batch size (the search may choose
    larger ones, and up to 3 per rate)."""
    return sum(confirm_point_s(min(s.batch_sizes), r, s.confirm_batches) for r in s.rates)


def confirm_point_s(n: int, rate: float, batches: int) -> float:
    """One real point: its batches arrive at rate / n per second."""
    return (CONFIRM_WARMUP + batches) * n / rate


def confirm_s(e: Confirmed, batches: int) -> float:
    """One candidate's real sweep: its start and a point at each of its rates."""
    return CONFIRM_SETUP_S + sum(confirm_point_s(e.candidate.batch_size, r, batches) for r in e.rates)


def within_budget(entries: list[Confirmed], batches: int, left_s: float) -> tuple[list[Confirmed], list[str]]:
    """The candidates whose real sweeps fit in the time left, the best at some rate first; a note for each of the
    others (left out, not measured: the answer stands on their prediction)."""
    def rank(e: Confirmed) -> int:
        return min(sorted(entries, key=lambda o: (o.predicted.get(r, math.inf), o.candidate.batch_size)).index(e)
                   for r in e.rates)

    kept, notes = [], []
    for e in sorted(entries, key=rank):
        needed = confirm_s(e, batches)
        if needed <= left_s:
            kept.append(e)
            left_s -= needed
        else:
            notes.append(f"not confirmed: {e.candidate.setup}: its real sweep takes about {needed:,.0f} s, more than "
                         f"the {max(left_s, 0):,.0f} s of --budget-s left; raise --budget-s to measure it")
    return [e for e in entries if e in kept], notes


def count_layouts(groups, most: int, where) -> int:
    """How many distinct layouts a platform's worker groups give (every non-empty subset, identical groups
    counted once per how many of them): refused beyond `most`, before a subset is built."""
    from collections import Counter

    total = math.prod(m + 1 for m in Counter(groups).values()) - 1
    if total > most:
        raise UserError(f"--platform {where}: its {len(groups)} worker groups give {total:,} layouts (every subset), "
                        f"more than --max-layouts {most}: merge identical groups into one with a larger count, or "
                        "raise --max-layouts")
    return total


def advise(s: AdviseSettings, on_step=lambda text: None, on_count=lambda stage, done, total: None) -> Advice:
    """`on_step(text)`: what it does now; `on_count(stage, done, total)`: how far the simulated search and the
    real confirmation are."""
    from ..dirlock import run_lock

    check(s)
    s.output.mkdir(parents=True, exist_ok=True)
    with run_lock(s.output):  # two advise into one -o both answered, each over the other's files
        # an advice replaced (--force), or one interrupted before its advice.md: its runs this one does not write
        # again are dropped once it is written (an interrupted one's were left beside the new answer's)
        earlier = EarlierRuns.of(s.output, s.platform)
        advice = _advise(s, on_step, on_count)
        earlier.drop_unreplaced()
        drop_set_aside(s.output)  # an earlier advise's confirmations on a cluster, measured again now
        return advice


def _host_space(s: AdviseSettings, cores: int, on_step):
    """This host's search space: the model and its splits, its worker layouts, its cached task times (dropped
    with --recalibrate); and the notes of making them."""
    from ..ortenv import cuda_status
    from .targets import make_targets
    from .times import HostTimes

    targets, one_run_s, said = make_targets(s.model, s.offloads, s.parts, on_step=on_step, streams=s.streams,
                                            data=s.input_data)
    times = HostTimes.of(targets, s.input_data)
    if s.recalibrate:
        gone = times.forget()
        said = [*said, f"--recalibrate: {len(gone)} cached performance model(s) of these targets dropped; their "
                       "task times are measured afresh"]
    return targets, machine_layouts(cores, 1 if cuda_status().usable else 0), times, one_run_s, said


def _advise(s: AdviseSettings, on_step, on_count) -> Advice:
    from ..devices import usable_cores

    started = time.monotonic()
    cores = usable_cores()
    notes = []
    if s.platform is None:
        targets, layouts, times, one_run_s, said = _host_space(s, cores, on_step)
        platforms, confirm = None, s.confirm
        notes += said
    else:
        targets, layouts, times, platforms, one_run_s, said = _platform_space(s)
        on_node = read_platform(s.platform).ray_resources if s.ray else {}
        confirm = s.confirm and bool(on_node)  # on a node of the platform's kind, where the cluster has one
        notes.append("simulated on the platform file's machine; the best confirmed for real on a node of the "
                     f"cluster with {on_node}" if confirm else "simulated on the platform file's machine: nothing "
                     "confirmed for real (with --ray, a platform's [ray] resources name the nodes to confirm on)")
        notes += said
        if s.offloads or s.streams:
            notes.append("splits and branch plans were not searched: a platform file's times belong to one target "
                         "(the one given here); capture a platform from a run of each split to compare them")
    settings = SearchSettings(s.model_name or s.model.stem, targets, layouts, tuple(sorted(set(s.batch_sizes))),
                              tuple(sorted(set(s.rates))), s.policies, s.output, s.latency_bound_ms, s.batches,
                              s.warmup, s.seed, s.jobs or cores, s.budget_s - (confirm_floor_s(s) if confirm else 0),
                              platforms, one_run_s, cores, s.input_data)
    pool = process_pool(settings.jobs, s.ray, s.ray_address, s.output / "ray.log")
    try:
        result = search(settings, times, on_step, pool, lambda done, total: on_count("simulated", done, total))
        result.notes = notes + result.notes
        if s.platform is None:  # the host's times, learnt over earlier runs: a busy machine's said
            result.notes += falling_times(times, [t.key for t in targets], settings.batch_sizes)
        write_candidates(result, s.output / "candidates.csv")  # the search is kept whatever confirmation meets
        entries = top_candidates(result, targets, s.latency_bound_ms)
        on_step(f"simulating the headroom of {len(entries)} candidate(s) at 1 to 4 x the rate")
        predict_saturation(entries, settings, pool, lambda done, total: on_count("headroom", done, total))
    except BaseException:  # an interrupt, an error: the simulations still running are not waited for
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        raise
    finally:
        if pool is not None:  # before any real confirmation: it runs alone on the machine
            pool.shutdown()
    if s.latency_bound_ms is not None:
        entries = keep_most_headroom(entries)  # under a bound, the answer is the one with the most headroom
    used = times.frozen()  # the times the predictions rest on, before the confirmations relearn the host's
    if confirm and entries:
        result.notes += _confirm(s, entries, settings, s.budget_s - (time.monotonic() - started), on_step, on_count)
        result.notes += far_from_predicted(entries)
    recs = recommendations(result, entries, s.latency_bound_ms)
    compare_layouts(result, recs, targets, s.latency_bound_ms)
    write_curves(entries, settings.model_name, s.output / "curves.csv")
    figure = draw(s.output)
    write_markdown(s.output / "advice.md", settings.model_name, recs, result, entries, figure, s.command,
                   markdown_lines(recs, used))
    files = [s.output / name for name in ("advice.md", "candidates.csv", "curves.csv")] + ([figure] if figure else [])
    return Advice(recs, result, entries, files)


def _confirm(s: AdviseSettings, entries: list[Confirmed], settings: SearchSettings, left_s: float, on_step,
             on_count) -> list[str]:
    """The best candidates that fit in the time left, measured for real: here, or on a node of the cluster with
    the platform's [ray] resources; returns the notes."""
    chosen, notes = within_budget(entries, s.confirm_batches, left_s)
    if s.platform is None:
        return notes + measure(chosen, settings, s.confirm_batches, CONFIRM_WARMUP, on_step,
                               lambda done, total: on_count("confirmed", done, total))
    return notes + measure_on_cluster(chosen, settings, s.confirm_batches, CONFIRM_WARMUP,
                                      read_platform(s.platform).ray_resources, s.ray_address, on_step)


def _platform_space(s: AdviseSettings):
    """A platform file's machine: its worker groups and every non-empty subset of them as layouts (each written
    as a platform file of its own); its times for the one target they belong to (the model, or a plan)."""
    from collections import Counter
    from itertools import product

    from ..outputfile import write_text_atomic
    from ..runtime.platform import dump_platform
    from .times import PlatformTimes

    platform, loaded, table, said = platform_for(s)
    parts = len(loaded.part_files)
    layouts: list[str] = []
    files: dict[str, Path] = {}
    kinds = Counter(platform.workers)  # identical groups: a subset takes 0 to all of them, in the file's order
    for taken in sorted(product(*(range(m + 1) for m in kinds.values())), key=sum):
        if not any(taken):
            continue
        variant = replace(platform, workers=[g for g, k in zip(kinds, taken) for _ in range(k)], path=None)
        if variant.workers_spec not in files:
            path = s.output / "platforms" / f"{len(files)}.toml"
            write_text_atomic(path, mark_layout(dump_platform(variant)))
            layouts.append(variant.workers_spec)
            files[variant.workers_spec] = path
    times = PlatformTimes(table, parts)
    target = (Target("whole", str(s.model)) if parts == 1 else
              Target("plan", str(s.model), parts, loaded.offload_fraction))
    return [target], layouts, times, files, 0.0, said


def platform_for(s: AdviseSettings):
    """The platform file, the target its times are used for (checked: the same file, or the same number of parts
    on trust), its times of each part and what advice.md says of them."""
    from ..runtime.platform import check_times_target, read_platform
    from ..runtime.simtimes import part_times
    from ..systems.target import load_target

    if s.platform is None:
        raise ValueError("platform_for needs --platform")  # the callers check it first
    platform = read_platform(s.platform)
    loaded = load_target(s.model)
    sha, parts = loaded.plan_sha256 or loaded.model_sha256, len(loaded.part_files)
    said = [f"task times: platform '{s.platform}' ({platform.name}){': ' + platform.notes if platform.notes else ''}"]
    if check_times_target(platform, f"--platform {s.platform}", sha, parts, s.trust_platform, loaded.model_sha256):
        said.append(f"--trust-platform: the platform's times were captured from sha256 "
                    f"{platform.target_sha256[:12]} and used for '{s.model}' (sha256 {sha[:12]}, {parts} part(s)) "
                    "on trust")
        given = f"given by advise --trust-platform to '{s.model}', captured from sha256 {platform.target_sha256}"
        # the layouts' platform files (_platform_space) are this target's now, and say so
        platform = replace(platform, target_sha256=sha, notes=f"{platform.notes}; {given}" if platform.notes else given)
    return platform, loaded, part_times(platform, loaded.part_files, s.model_name or s.model.stem), said
