"""`split` as one call: costs -> weighted DAG -> METIS and/or topological cut, or branches -> parts on disk ->
verified plan."""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

from .. import modelio
from ..devices import parse_device
from ..dirlock import LOCK_FILE, run_lock
from ..errors import UserError, install_hint
from ..inputdata import RANDOM, InputData, check_input_data
from ..profile.costs import CLOCK_WORDS, main_timing, node_cost, read_costs, read_meta, timing_of
from ..zoo.names import typed_name
from .branches import width
from .extract import part_io, write_part
from .graph import WeightedDag, build_dag, constant_nodes
from .intensity import bound, launch_order, node_work
from .partition import BranchPlan, Candidate, best, split_branches, split_metis, split_topo
from .plan import PLAN_FILE, PLAN_FILES, EdgeSpec, PartSpec, Plan, TensorSpec, clear_plan_dir, write_plan
from .tensors import TensorInfo, tensor_table
from .verify import verify

METHODS = ("metis", "topo", "both", "branches")


@dataclass
class SplitSettings:
    model: Path
    output: Path
    costs: Path | None = None
    offload: float = 0.1
    parts: int = 2
    method: str = "both"
    batch: int = 1
    device: str | None = None  # which device's times in the costs file; default: its first
    seeds: int = 8
    tolerance: float = 0.03
    check: bool = True
    check_tolerance: float = 1e-4  # relative to the largest output value
    force: bool = False
    allow_host_times: bool = False  # cut a GPU split on host launch times (no CUPTI when profiled)
    streams: int = 2  # branches: the most chains of nodes run at once (Opara's streams)
    min_part_us: float = 50.0  # branches: a part worth less (a few tasks' cost in the runtime) joins a neighbour
    input_data: InputData = RANDOM  # what the model is fed when it is profiled, probed and verified


@dataclass
class SplitResult:
    plan: Plan
    chosen: Candidate
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)
    part_nodes: list[list[str]] = field(default_factory=list)


MAX_SEEDS = 1000
MIN_OFFLOAD = 1e-4  # of the compute time: METIS fails on target weights far below it (1e-300: an exception)


def check_settings(s: SplitSettings) -> None:
    if not MIN_OFFLOAD <= s.offload <= 1.0 - MIN_OFFLOAD:
        raise UserError(f"--offload {s.offload:g}: the fraction moved to later parts must be between {MIN_OFFLOAD:g} "
                        f"and {1 - MIN_OFFLOAD:g} (the paper uses 0.05 to 0.15)")
    if s.parts < 2:
        raise UserError(f"--parts {s.parts}: a split needs at least 2 parts")
    if s.method not in METHODS:
        raise UserError(f"--method {s.method}: choose metis, topo, both or branches")
    if s.streams < 2:  # one stream is the whole model in one part: nothing to split
        raise UserError(f"--streams {s.streams}: a branch plan runs at least 2 chains of nodes at a time, e.g. "
                        "--streams 2")
    if not 0.0 <= s.min_part_us < float("inf"):  # NaN fails this too
        raise UserError(f"--min-part-us {s.min_part_us}: a time in microseconds, 0 or more (default 50)")
    if s.batch < 1:
        raise UserError(f"--batch {s.batch}: the batch size must be at least 1")
    if not 0.0 < s.check_tolerance < 1.0:  # NaN fails this too
        raise UserError(f"--verify-tolerance {s.check_tolerance}: a difference relative to the largest output, above "
                        "0 and below 1, e.g. --verify-tolerance 1e-3")
    if not 0.0 <= s.tolerance < 1.0:  # NaN fails this too
        raise UserError(f"--tolerance {s.tolerance}: a distance to the target fraction, at least 0 and below 1 "
                        "(default 0.03)")
    if not 1 <= s.seeds <= MAX_SEEDS:  # each seed is a METIS run per part count: a million ran for hours
        raise UserError(f"--seeds {s.seeds}: give 1 to {MAX_SEEDS:,} METIS seeds, e.g. --seeds 8")
    if s.output.exists() and not s.output.is_dir():
        raise UserError(f"-o '{s.output}' is a file: give a directory for the plan")
    entries = list(s.output.iterdir()) if s.output.is_dir() else []
    foreign = [e.name for e in entries if not (e.is_file() and PLAN_FILES.match(e.name))]
    if foreign:  # --force would be refused too: split replaces only a plan of its own
        raise UserError(f"-o '{s.output}' holds {foreign[0]!r}, which split does not write: choose another -o")
    if entries and not (s.output / PLAN_FILE).exists():  # e.g. a profile's costs.csv: not split's to replace
        raise UserError(f"-o '{s.output}' holds {entries[0].name!r} but no plan.json: choose another -o")
    if entries and not s.force:
        raise UserError(f"plan directory '{s.output}' already exists: choose another -o or add --force to replace it")


@dataclass
class Costs:
    """The node times a split is cut on, and what clock they come from."""

    node_us: dict[str, float]
    device: str
    timing: str  # gpu, cpu, host-launch (or "gpu+cpu" when a CUDA session left nodes on the CPU)
    table: pd.DataFrame  # every device's rows at the chosen batch size
    sha256: str  # of the costs file, as read

    @property
    def fraction_of(self) -> str:
        """What the offload fraction is a fraction of, in words (plan.json, the CLI)."""
        clock = {**CLOCK_WORDS, "gpu+cpu": "GPU time (CUPTI; nodes ORT left on the CPU: CPU time)"}.get(
            self.timing, self.timing)
        return f"{clock} on {self.device}"


def _timing_words(timings: set[str]) -> str:
    """A GPU profile whose CUDA session left some nodes on the CPU is said so; otherwise the rows' main clock."""
    return "gpu+cpu" if timings == {"gpu", "cpu"} else main_timing(timings)


def _costs_for(model: onnx.ModelProto, model_sha: str, path: Path, batch: int, device: str | None,
               constants: set[str], notes: list[str], allow_host_times: bool) -> Costs:
    frame = read_costs(path)
    meta = read_meta(path)
    recorded = meta.get("model_sha256")
    if recorded and recorded != model_sha:
        other = f"; it profiled {Path(str(meta['model'])).name}" if meta.get("model") else ""  # another --shape?
        raise UserError(f"'{path}' was measured on another model (sha256 {recorded[:12]}, this one {model_sha[:12]}"
                        f"{other}): profile this model into a file of its "
                        "own with 'staronnx profile MODEL -o costs.csv' (that one is the other model's; with the same "
                        "--shape as here, where it has one)")
    names = {n.name for n in model.graph.node}
    foreign = set(frame.node) - names
    if foreign:
        raise UserError(f"'{path}' has {len(foreign)} nodes this model lacks (e.g. '{sorted(foreign)[0]}'): it comes "
                        "from another model; profile this one into a file of its own with 'staronnx profile MODEL -o "
                        "costs.csv'")
    devices = list(dict.fromkeys(frame.device))
    device = device or devices[0]
    if device not in devices:
        raise UserError(f"--device {device}: '{path}' has times for {', '.join(devices)} only")
    rows = frame[frame.device == device]
    sizes = sorted(set(rows.batch_size))
    nearest = min(sizes, key=lambda b: (abs(b - batch), b))
    if nearest != batch:
        notes.append(f"{path} has no batch {batch} on {device}: using its batch-{nearest} times")
    rows = rows[rows.batch_size == nearest]
    compute = [n.name for n in model.graph.node if n.name not in constants]
    missing = [n for n in compute if n not in set(rows.node)]
    if missing:
        raise UserError(f"'{path}' has no time for {len(missing)} compute nodes (e.g. '{missing[0]}'): "
                        f"profile this model again with 'staronnx profile MODEL -o {path}'")
    if not float(node_cost(rows[rows.node.isin(compute)]).sum()) > 0:  # every share would divide by it
        raise UserError(f"'{path}': every compute node takes 0 us at batch {nearest} on {device}, no time to split "
                        f"by (edited?): profile this model again with 'staronnx profile MODEL -o {path}'")
    timing = _timing_words(set(timing_of(rows)))
    if timing == "host-launch":
        why = meta.get("gpu_clock_note") or "it was profiled without CUPTI, or before staronnx measured GPU time"
        if not allow_host_times:
            raise UserError(f"'{path}' holds host launch times for {device}, not GPU time ({why}): a GPU split cut "
                            "on them moves launch overhead, not compute. Profile again with cupti-python installed "
                            f"({install_hint('cuda13', 'cuda12')}), or add --allow-host-times to cut on them "
                            "anyway")
        notes.append(f"cutting on host launch times of {device} (--allow-host-times): the fraction is of launch "
                     "time, not of GPU time")
    return Costs(dict(zip(rows.node, node_cost(rows))), device, timing, frame[frame.batch_size == nearest],
                 modelio.sha256_of(path))


def _estimated(costs: Costs) -> list[str]:
    """profile's warning where the times cut on are mostly a work estimate's (one group of many nodes)."""
    from ..profile.attribution import estimated_group_warning

    table = costs.table[costs.table.device == costs.device]
    if not {"how", "kernels", "mean_us"} <= set(table.columns) or table.empty:
        return []
    said = estimated_group_warning(int(table.batch_size.iloc[0]), table.to_dict("records"))
    return [said] if said else []


def _profile_now(settings: SplitSettings, notes: list[str]) -> Path:
    from ..profile.profiler import ProfileSettings, profile_model, write_profile

    device = parse_device("cpu")
    profiled = ProfileSettings(settings.model, device, [settings.batch], runs=10, warmup=2, overhead=False,
                               input_data=settings.input_data)
    path = settings.output / "costs.csv"
    write_profile(path, profiled, profile_model(profiled))
    notes.append(f"no --costs: profiled {typed_name(settings.model)} on {device} now (10 runs, batch {settings.batch}) "
                 f"-> {path}")
    return path


def _spec(info: TensorInfo) -> TensorSpec:
    return TensorSpec(info.name, info.dtype, list(info.shape), info.bytes_per_sample, info.fixed_bytes)


def run_split(s: SplitSettings, on_step=lambda text: None) -> SplitResult:
    """The split; one that fails (an error, Ctrl-C) leaves no file of its own behind, so the same command runs
    again as it is (it left a profile's costs.csv, and -o was then refused as an existing plan directory)."""
    check_settings(s)
    existed, started_ns = s.output.is_dir(), time.time_ns()
    with run_lock(s.output):  # two splits into one -o mixed their parts, or one cleared the other's (--force)
        try:
            return _split(s, on_step)
        except VerificationFailed:
            raise  # the plan is kept for inspection, as the message says
        except BaseException:
            _remove_written(s.output, started_ns, existed)
            raise


def _remove_written(directory: Path, since_ns: int, existed: bool) -> None:
    """Split's own files written since `since_ns` (with --force, the plan they replace was cleared already)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        made = entry.stat().st_mtime_ns >= since_ns or (entry.name == LOCK_FILE and not existed)  # (coarse clocks)
        if entry.is_file() and PLAN_FILES.match(entry.name) and made:
            entry.unlink(missing_ok=True)
    if not existed and not any(directory.iterdir()):
        directory.rmdir()


def _split(s: SplitSettings, on_step) -> SplitResult:
    notes: list[str] = []
    on_step("loading the model")
    model = modelio.load_model(s.model)
    check_input_data(s.input_data, modelio.input_specs(model))
    modelio.check_node_names(model)
    model_sha = modelio.sha256_of(s.model)
    constants = constant_nodes(model.graph)
    compute_count = sum(1 for n in model.graph.node if n.name not in constants)
    if s.method == "branches":
        check_branches(model, s.model)
    elif compute_count < s.parts:
        raise UserError(f"the model has {compute_count} compute node(s): it cannot be split into {s.parts} parts")
    costs = None
    if s.costs is not None:  # read and checked before the output is touched: a refused file loses nothing
        costs = _costs_for(model, model_sha, s.costs, s.batch, s.device, constants, notes, s.allow_host_times)
    if s.force:
        clear_plan_dir(s.output, [s.model] + ([s.costs] if s.costs is not None else []))
    s.output.mkdir(parents=True, exist_ok=True)
    if costs is None:
        on_step("profiling (no --costs given)")
        s.costs = _profile_now(s, notes)
        costs = _costs_for(model, model_sha, s.costs, s.batch, s.device, constants, notes, s.allow_host_times)

    notes += _estimated(costs)
    on_step("measuring tensor sizes")
    wanted = {t for n in model.graph.node for t in n.output if t} | {i.name for i in model.graph.input}
    wanted -= {i.name for i in model.graph.initializer}
    constant_out = {t for n in model.graph.node if n.name in constants for t in n.output}
    outputs = {o.name for o in model.graph.output}  # one may come from weights alone: the last part writes it
    tensors = tensor_table(model, s.model, (wanted - constant_out) | outputs, s.input_data)
    dag = build_dag(model, costs.node_us, {t: info.bytes_at(s.batch) for t, info in tensors.items()})

    on_step("partitioning")
    try:
        candidates, branch = _partition(s, dag)
    except UserError as exc:  # said with what the times are: the notes are printed only after a split
        other = next((note for note in notes if "using its batch-" in note), "")
        raise UserError(f"{exc} ({other})" if other else str(exc)) from None
    chosen = best(candidates, s.offload, s.tolerance)
    if branch is None and abs(chosen.fraction - s.offload) > s.tolerance:
        notes.append(_why_unreachable(dag, chosen, s.offload))

    on_step("writing parts")
    ios = part_io(model, dag, list(chosen.parts), len(chosen.part_us))
    files = []
    for i, io in enumerate(ios):
        files.append(s.output / f"part_{i}.onnx")
        write_part(model, io, i, tensors, files[-1])
    plan = _plan(s, model, model_sha, costs, dag, candidates, ios, tensors)
    _add_work(plan, model, tensors, ios, branch, dag.total_us)
    for part, file in zip(plan.parts, files):
        part.sha256 = modelio.sha256_of(file)
    write_plan(plan, s.output)
    if s.check:
        on_step("verifying the parts against the full model")
        _verify(s, plan, files)
    return SplitResult(plan, chosen, candidates, notes, [io.node_names for io in ios])


def _partition(s: SplitSettings, dag: WeightedDag) -> tuple[list[Candidate], BranchPlan | None]:
    """The cuts the method asks for (a branch plan, or METIS's and the topological one's best)."""
    if s.method == "branches":
        branch = split_branches(dag, s.streams, s.min_part_us)
        check_branch_plan(branch, s, dag)
        return [branch.candidate], branch
    candidates = []
    if s.method in ("metis", "both"):
        candidates.append(split_metis(dag, s.offload, s.parts, s.tolerance, range(s.seeds)))
    if s.method in ("topo", "both"):
        candidates.append(split_topo(dag, s.offload, s.parts, s.tolerance))
    return candidates, None


def _add_work(plan: Plan, model: onnx.ModelProto, tensors: dict[str, TensorInfo], ios, branch: BranchPlan | None,
              total_us: float) -> None:
    """Each part's FLOPs, bytes moved and class (memory- or compute-bound); a branch plan's dag, with Opara's
    launch order of its parts."""
    work = node_work(model, tensors, [n for io in ios for n in io.node_names], plan.batch_size)
    for part, io in zip(plan.parts, ios):
        part.flops = float(sum(work[n][0] for n in io.node_names if n in work))
        part.bytes_moved = float(sum(work[n][1] for n in io.node_names if n in work))
        part.bound = bound(part.flops, part.bytes_moved)
    if branch is not None:
        deps = [sorted({e.source for e in plan.edges if e.target == p.index and e.source >= 0}) for p in plan.parts]
        order = launch_order(deps, [p.bound for p in plan.parts],
                             [p.estimated_us.get(plan.device, 0.0) for p in plan.parts])
        plan.dag = {**branch.to_json(total_us), "launch_order": order}


def check_branches(model: onnx.ModelProto, path: Path) -> None:
    """A branch plan needs nodes that can run at once; said before anything is profiled or written."""
    if width(build_dag(model, {}, defaultdict(int))) < 2:
        other = ("; split it with --method metis or topo to offload part of it instead" if
                 sum(1 for _ in model.graph.node) > 1 else " (one node: no split can help it)")
        raise UserError(f"no two nodes of '{path.name}' can run at once (its graph is a single chain): a branch plan "
                        f"cannot help it{other}")


def check_branch_plan(branch: BranchPlan, s: SplitSettings, dag: WeightedDag) -> None:
    if len(branch.cut.deps) < 2:
        raise UserError(f"every parallel branch of '{typed_name(s.model)}' takes less than --min-part-us "
                        f"{s.min_part_us:g} us at batch {s.batch}, so all joined into one part: lower --min-part-us"
                        f"{_branch_threshold(dag, s.streams)} or split at a larger --batch")


def _branch_threshold(dag: WeightedDag, streams: int) -> str:
    """' (at most X us keeps two parts or more)': the largest --min-part-us that keeps two parts, found by bisection
    (joins are made cheapest first whatever the threshold, so a larger one never keeps more parts; a quarter of
    the asked threshold, suggested before, failed again and again); '' where none above 0 does."""
    def kept(threshold: float) -> bool:
        return len(split_branches(dag, streams, threshold).cut.deps) >= 2

    low, high = 0.0, max(dag.total_us, 1.0)
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if kept(middle) else (low, middle)
    shown = math.floor(low * 1000) / 1000  # rounded down: the printed value keeps two parts too
    return f" (at most {f'{shown:.3f}'.rstrip('0').rstrip('.')} us keeps two parts or more)" if shown > 0 and \
        kept(shown) else ""


def _verify(s: SplitSettings, plan: Plan, files: list[Path]) -> None:
    """The chain of parts against the full model, recorded in plan.json; beyond the tolerance, one line (the plan
    is kept for inspection)."""
    plan.verification = verify(s.model, files, min(s.batch, 4), data=s.input_data)
    plan.verification["input_data"] = s.input_data.words()
    relative = max(s.check_tolerance, FLOAT_STEPS * plan.verification["output_eps"])  # float16: its own precision
    limit = relative * max(1.0, plan.verification["output_scale"])
    plan.verification["tolerance"] = limit
    plan.verification["passed"] = plan.verification["max_abs_diff"] <= limit
    write_plan(plan, s.output)
    if not plan.verification["passed"]:
        raise VerificationFailed(f"verification failed: the parts differ from the full model by "
                                 f"{plan.verification['max_abs_diff']:.3g} (> {limit:.3g}); the plan is kept in "
                                 f"{s.output} for inspection (a sweep refuses it); --verify-tolerance "
                                 f"{s.check_tolerance:g} is relative to the largest output "
                                 f"({plan.verification['output_scale']:.3g}): raise it if that difference is "
                                 "rounding, else please report this model")


FLOAT_STEPS = 4  # a tolerance never below this many steps of the outputs' float type, relative to their scale


class VerificationFailed(UserError):
    """The parts do not compute the model: the plan is kept (marked failed) for the user to look at."""


def _why_unreachable(dag: WeightedDag, chosen: Candidate, offload: float) -> str:
    heaviest = int(np.argmax(dag.weights_us))
    share = dag.weights_us[heaviest] / dag.total_us
    return (f"offload {offload:.3f} cannot be reached within tolerance: the closest acyclic chain moves "
            f"{chosen.fraction:.3f} (node weights are coarse: '{dag.names[heaviest]}' alone is {share:.1%})")


def _plan(s, model, model_sha, costs: Costs, dag, candidates, ios, tensors) -> Plan:
    """plan.json's content; `candidates`: every cut tried, of which the best is the plan's."""
    chosen = best(candidates, s.offload, s.tolerance)
    part_of_node = {name: chosen.parts[v] for v, name in enumerate(dag.names)}
    parts = []
    for i, io in enumerate(ios):
        names = [n for n in io.node_names if n in part_of_node]
        estimated = {str(d): round(float(node_cost(rows[rows.node.isin(names)]).sum()), 1)
                     for d, rows in costs.table.groupby("device")}
        parts.append(PartSpec(i, f"part_{i}.onnx", len(io.node_names), len(names), estimated,
                              round(chosen.part_us[i] / dag.total_us, 4),
                              [_spec(tensors[t]) for t in io.inputs], [_spec(tensors[t]) for t in io.outputs]))
    model_inputs = {i.name for i in model.graph.input}  # one may be a model output too: no part makes it
    producer = {t: i for i, io in enumerate(ios) for t in io.outputs if t not in model_inputs}
    grouped: dict[tuple[int, int], list[str]] = {}
    for i, io in enumerate(ios):
        for t in io.inputs:
            grouped.setdefault((producer.get(t, -1), i), []).append(t)
    edges = [EdgeSpec(src, dst, names, sum(tensors[t].bytes_per_sample for t in names),
                      sum(tensors[t].fixed_bytes for t in names)) for (src, dst), names in sorted(grouped.items())]
    seed = int(chosen.detail.split()[1].rstrip(",")) if chosen.method == "metis" else 0
    return Plan(
        source_model=os.path.abspath(s.model), source_sha256=model_sha, costs_file=str(s.costs),
        costs_sha256=costs.sha256, device=costs.device, batch_size=s.batch, method=chosen.method,
        detail=chosen.detail, seed=seed, target_fraction=s.offload if chosen.method != "branches" else 0.0,
        achieved_fraction=round(chosen.fraction, 4),
        cut_bytes=chosen.cut_bytes, parts=parts, edges=edges,
        model_inputs=[i.name for i in model.graph.input if i.name in tensors],
        model_outputs=[o.name for o in model.graph.output],
        comparison=[{"method": c.method, "detail": c.detail, "achieved_fraction": round(c.fraction, 4),
                     "cut_bytes": c.cut_bytes} for c in candidates],
        timing=costs.timing, fraction_of=costs.fraction_of)
