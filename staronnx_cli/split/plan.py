"""plan.json: the contract between `split` and `sweep` (versioned; read back exactly as written)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..dirlock import LOCK_FILE
from ..errors import UserError, json_text
from ..inputfile import MAX_JSON_BYTES, checked_input
from ..outputfile import write_text_atomic

PLAN_SCHEMA_VERSION = 1
PLAN_FILE = "plan.json"


@dataclass
class TensorSpec:
    name: str
    dtype: str
    shape: list  # ints and "batch"
    bytes_per_sample: int
    fixed_bytes: int = 0


@dataclass
class PartSpec:
    index: int
    file: str
    nodes: int
    compute_nodes: int
    estimated_us: dict[str, float]  # device -> predicted time at the plan's batch size
    share: float  # of the compute time on the plan's device
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    sha256: str = ""  # of the part file as written ("" in older plans)
    flops: float = 0.0  # at the plan's batch size, from shapes (0 in older plans)
    bytes_moved: float = 0.0  # activations in and out and weights of its nodes, at the plan's batch size
    bound: str = ""  # "memory" or "compute": its FLOPs per byte against the roofline's ridge ("" in older plans)


@dataclass
class EdgeSpec:
    source: int  # part index, or -1 for the model's inputs
    target: int
    tensors: list[str]
    bytes_per_sample: int
    fixed_bytes: int = 0


@dataclass
class Plan:
    source_model: str
    source_sha256: str
    costs_file: str
    costs_sha256: str
    device: str
    batch_size: int
    method: str
    detail: str
    seed: int
    target_fraction: float
    achieved_fraction: float
    cut_bytes: int  # at the plan's batch size
    parts: list[PartSpec]
    edges: list[EdgeSpec]
    model_inputs: list[str]
    model_outputs: list[str]
    comparison: list[dict] = field(default_factory=list)
    verification: dict = field(default_factory=dict)
    timing: str = ""  # the clock of the times the cut was made on: gpu, cpu, host-launch ("" in older plans)
    fraction_of: str = ""  # target and achieved fractions are fractions of this, e.g. "GPU time (CUPTI) on cuda:0"
    dag: dict = field(default_factory=dict)  # branch plans: streams, width, groups, critical path, total work
    schema_version: int = PLAN_SCHEMA_VERSION

    def to_json(self) -> str:
        return json_text(asdict(self))


def write_plan(plan: Plan, directory: Path) -> Path:
    path = directory / PLAN_FILE
    write_text_atomic(path, plan.to_json())
    return path


def read_plan(directory: str | Path) -> Plan:
    directory = Path(directory)
    path = directory / PLAN_FILE if directory.is_dir() else directory
    if not path.exists():
        if directory.is_dir() and (directory / "run.json").is_file():  # a sweep's run: its plan is elsewhere
            raise UserError(f"'{directory}' is a sweep's run directory, not a plan: give the plan it swept (its "
                            "run.json's target), or make one with 'staronnx split MODEL -o PLAN_DIR'")
        raise UserError(f"no plan at '{directory}': make one with 'staronnx split MODEL -o {directory}'")
    try:
        data = json.loads(checked_input(path, "plan", f"make one with 'staronnx split MODEL -o {directory}'",
                                        MAX_JSON_BYTES).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"'{path}' is not valid JSON ({exc}): recreate it with 'staronnx split'") from None
    if not isinstance(data, dict):
        raise UserError(f"'{path}' is not a staronnx plan (a JSON {type(data).__name__}, not an object): recreate it "
                        "with 'staronnx split'")
    version = data.get("schema_version")
    if version != PLAN_SCHEMA_VERSION:
        raise UserError(f"'{path}' has plan schema version {version}, this staronnx reads {PLAN_SCHEMA_VERSION}: "
                        "recreate the plan with this version's 'staronnx split'")
    try:
        data["parts"] = [PartSpec(**{**p, "inputs": [TensorSpec(**t) for t in p["inputs"]],
                                     "outputs": [TensorSpec(**t) for t in p["outputs"]]}) for p in data["parts"]]
        data["edges"] = [EdgeSpec(**e) for e in data["edges"]]
        plan = Plan(**data)
    except (TypeError, KeyError, AttributeError) as exc:
        raise UserError(f"'{path}' is not a staronnx plan ({exc}): recreate it with 'staronnx split'") from None
    wrong = _wrong_field(plan)
    if wrong:
        raise UserError(f"'{path}': {wrong} (edited?): recreate it with 'staronnx split'")
    for e in plan.edges:  # the runtimes run part p after the parts it reads, all numbered before it
        ints = isinstance(e.source, int) and isinstance(e.target, int)
        if not (ints and -1 <= e.source < e.target < len(plan.parts)):
            raise UserError(f"'{path}': edge {e.source} -> {e.target} does not run from an earlier part to a later one "
                            f"of its {len(plan.parts)} (parts are numbered in a topological order): recreate it with "
                            "'staronnx split'")
    unfed = _unfed_input(plan)
    if unfed:
        raise UserError(f"'{path}': {unfed} (edited?): recreate it with 'staronnx split'")
    return plan


def _wrong_field(plan: Plan) -> str:
    """What in a plan read back is not of its type (a file name, the DAG's groups and launch order), or ''."""
    if not isinstance(plan.source_model, str) or not isinstance(plan.source_sha256, str):
        return "source_model and source_sha256 must be text"
    if [p.index for p in plan.parts] != list(range(len(plan.parts))):
        indexes = [p.index for p in plan.parts]
        return f"parts must be listed in their order, part i at index i (their indexes read {indexes})"
    bad = next((p.index for p in plan.parts if not (isinstance(p.file, str) and p.file)), None)
    if bad is not None:
        return f"part {bad} names no file"
    for part in plan.parts:
        times = part.estimated_us
        if not (isinstance(times, dict) and all(isinstance(k, str) and _amount(v) for k, v in times.items())):
            return f"part {part.index}'s estimated_us must map each device to a time in us, 0 or more"
        wrong = next((name for name in ("share", "flops", "bytes_moved") if not _amount(getattr(part, name))), "")
        if wrong:
            return f"part {part.index}'s {wrong} must be a number, 0 or more"
    if not isinstance(plan.dag, dict):
        return "dag must be an object"
    for key in ("launch_order", "groups"):
        value = plan.dag.get(key)
        if value is None:
            continue
        if not (isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)):
            return f"dag.{key} must be a list of whole numbers"
        if key == "launch_order" and sorted(value) != list(range(len(plan.parts))):
            return f"dag.launch_order must order each of its {len(plan.parts)} parts once"
        if key == "groups" and (len(value) != len(plan.parts) or min(value, default=0) < 0):
            return f"dag.groups must give each of its {len(plan.parts)} parts a group from 0"
    return ""


def _amount(value) -> bool:
    """A finite number, 0 or more (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")


def _unfed_input(plan: Plan) -> str:
    """A part input no edge brings it (from the model's inputs or an earlier part's outputs), or an edge bringing a
    tensor its source does not make; or ''."""
    for e in plan.edges:
        made = plan.model_inputs if e.source < 0 else [t.name for t in plan.parts[e.source].outputs]
        foreign = [t for t in e.tensors if t not in made]
        if foreign:
            where = "the model's inputs" if e.source < 0 else f"part {e.source}'s outputs"
            return f"edge {e.source} -> {e.target} brings '{foreign[0]}', which is not among {where}"
    brought = {(e.target, t) for e in plan.edges for t in e.tensors if isinstance(e.target, int)}
    for part in plan.parts:
        for spec in part.inputs:
            if (part.index, spec.name) not in brought:
                return f"part {part.index} reads '{spec.name}', which no edge brings it"
    return ""


PLAN_FILES = re.compile(r"^\.?(plan\.json|part_\d+\.(onnx|data)|costs\.csv|costs\.meta\.json)(\.tmp|\.\d+\.tmp)?$"
                        r"|^\.staronnx\.lock$")  # the lock split holds while it writes (dirlock.py)


def clear_plan_dir(directory: Path, inputs: list[Path]) -> None:
    """`split --force`: empty a plan directory, and only that. It must hold a plan.json and nothing but the files
    `split` writes (parts, their external data, the costs it profiled), and no input of this command."""
    if not directory.exists():
        return
    entries = [e for e in directory.iterdir() if e.name != LOCK_FILE]  # the lock this split holds stays
    if not entries:
        return
    foreign = [e.name for e in entries if not (e.is_file() and PLAN_FILES.match(e.name))]
    if not (directory / PLAN_FILE).exists() or foreign:
        what = f"it holds {foreign[0]!r}, which split did not write" if foreign else "it holds no plan.json"
        raise UserError(f"--force replaces a plan directory, but '{directory}' is not one ({what}): choose another "
                        "-o, or empty it yourself")
    here = directory.resolve()
    for path in inputs:
        if path is not None and path.exists() and path.resolve().parent == here:
            raise UserError(f"--force would delete '{path}', an input of this split: move it out of '{directory}' "
                            "or choose another -o")
    for entry in entries:
        entry.unlink()
