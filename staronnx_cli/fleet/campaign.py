"""A campaign file (TOML): the machine kinds of a Ray cluster and the sweeps to run on each. Every (sweep, kind)
pair is one job. Read and checked whole before anything runs: one line naming the entry and the fix."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..tomlfile import read_toml

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a sweep's and a kind's name: a folder name on every system
RAY_OWN = ("CPU", "GPU", "memory", "object_store_memory")  # resources Ray counts itself
SIM_SHARE = 0.001  # of a kind's resource a simulated sweep asks: several share a node, a real one holds it whole
MAX_JOBS = 10_000


@dataclass(frozen=True)
class Kind:
    """A machine kind: the Ray resources one node of it has (a real sweep asks for all of each, so that Ray runs
    one at a time per node: each node advertises each of them as 1)."""

    name: str
    resources: dict[str, float]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    target: str  # a zoo name, or a model or plan path (relative to the campaign file)
    kinds: tuple[str, ...]
    workers: str = "auto"
    batch: str = "1,2,4"
    rate: str = "auto"
    system: str = "staronnx"
    policy: str = "dmda"
    engine: str = "real"
    platform: str = ""  # sim: a platform file (relative to the campaign file)
    batches: int = 50
    warmup: int = 5
    seed: int = 0
    shape: tuple[str, ...] = ()  # sweep's --shape: a model's free sizes after the batch
    input_data: str = "random"  # sweep's --input-data: random, zeros or a samples file (relative to the campaign)

    @property
    def model_name(self) -> str:
        """The target's name, and its shape (as `sweep --shape` names it): results of two sequence lengths apart."""
        from ..shapes import parse_shapes, shape_slug
        from ..zoo.names import display_name

        name = display_name(Path(self.target)) if self.target.endswith(".onnx") else Path(self.target).stem
        return f"{name}.{shape_slug(parse_shapes(list(self.shape)))}" if self.shape else name

    def settings(self, target: Path = Path(), output: Path = Path(), platform: Path | None = None,
                 resume: bool = False, input_data: Path | None = None):
        """The SweepSettings this [[sweep]] means, as `staronnx sweep` would build them (without a target or an
        output: what check_grid looks at, before Ray starts)."""
        from ..inputdata import RANDOM, InputData
        from ..runtime.workers import canonical_workers
        from ..sweep.grid import parse_rate_option
        from ..sweep.settings import SweepSettings
        from ..zoo.names import model_name_of

        auto, rates = parse_rate_option(self.rate)
        return SweepSettings(
            target, output, workers=canonical_workers(self.workers), policy=self.policy,
            batch_sizes=tuple(int(n) for n in self.batch.split(",") if n.strip()), auto_rates=auto, rates=rates,
            batches=self.batches,
            warmup=self.warmup, system=self.system, seed=self.seed, engine=self.engine, platform=platform,
            resume=resume, command=f"staronnx fleet: [[sweep]] {self.name}",
            input_data=InputData(str(input_data)) if input_data else
            RANDOM if self.input_data == "random" else InputData(self.input_data),
            model_name=model_name_of(str(target), target) if target != Path() and target.is_dir() else self.model_name)


@dataclass(frozen=True)
class Job:
    sweep: SweepSpec
    kind: Kind

    @property
    def key(self) -> str:
        """Its folder under the campaign's output: SWEEP/KIND."""
        return f"{self.sweep.name}/{self.kind.name}"

    @property
    def resources(self) -> dict[str, float]:
        share = 1.0 if self.sweep.engine == "real" else SIM_SHARE
        return {name: amount * share for name, amount in self.kind.resources.items()}


@dataclass(frozen=True)
class Campaign:
    path: Path
    name: str
    kinds: dict[str, Kind]
    sweeps: list[SweepSpec] = field(default_factory=list)

    @property
    def jobs(self) -> list[Job]:
        return [Job(s, self.kinds[k]) for s in self.sweeps for k in s.kinds]


def read_campaign(path: Path) -> Campaign:
    return parse_campaign(read_toml(path, "campaign file", "write one as docs/fleet.md shows"), path)


def parse_campaign(data: dict, path: Path) -> Campaign:
    kinds = {}
    extra = sorted(set(data) - {"name", "kinds", "sweep"})  # [[sweeps]] beside [[sweep]]: its jobs were dropped
    if extra:
        raise UserError(f"campaign: unknown key {extra[0]!r} at the top (known: name, [kinds.NAME], [[sweep]])")
    if "name" in data and not isinstance(data["name"], str):
        raise UserError(f"campaign: name = {data['name']!r} must be a string")
    if not isinstance(data.get("kinds") or {}, dict) or not isinstance(data.get("sweep") or [], list):
        raise UserError("campaign: write the machine kinds as [kinds.NAME] tables and the sweeps as [[sweep]] "
                        "entries (docs/fleet.md)")
    for name, table in (data.get("kinds") or {}).items():
        where = f"[kinds.{name}]"
        _check_name(name, where)
        resources = table.get("resources") if isinstance(table, dict) else None
        if isinstance(table, dict) and set(table) - {"resources"}:
            raise UserError(f"campaign: {where}: unknown key {sorted(set(table) - {'resources'})[0]!r} (a kind has "
                            "resources only)")
        if not isinstance(resources, dict) or not resources:
            raise UserError(f"campaign: {where} needs resources, the Ray resources a node of this kind has, e.g. "
                            f"resources = {{ {name} = 1 }} (start its nodes with ray start --resources "
                            f"'{{\"{name}\": 1}}')")
        for key, value in resources.items():
            if key in RAY_OWN:  # Ray refuses them as custom resources ("use num_cpus"), after the cluster started
                raise UserError(f"campaign: {where}: resource {key} is one of Ray's own ({', '.join(RAY_OWN)}): name "
                                f"the kind's nodes with a resource of your own, e.g. resources = {{ {name} = 1 }}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 1e6):
                raise UserError(f"campaign: {where}: resource {key} = {value!r} must be a positive number")
        kinds[name] = Kind(name, {str(k): float(v) for k, v in resources.items()})
    if not kinds:
        raise UserError("campaign: no [kinds.NAME]: add e.g. [kinds.cpu16] resources = { cpu16 = 1 }")
    sweeps = [_sweep(entry, i, kinds) for i, entry in enumerate(data.get("sweep") or [])]
    if not sweeps:
        raise UserError("campaign: no [[sweep]]: add e.g. [[sweep]] target = \"tiny_cnn\" kinds = [\"cpu16\"]")
    names = [s.name for s in sweeps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"campaign: two [[sweep]] are named {twice[0]!r}: give each its own name")
    campaign = Campaign(path, str(data.get("name") or path.stem), kinds, sweeps)
    if len(campaign.jobs) > MAX_JOBS:
        raise UserError(f"campaign: {len(campaign.jobs)} jobs (sweeps x kinds), more than {MAX_JOBS}: split it")
    return campaign


def _sweep(entry, index: int, kinds: dict[str, Kind]) -> SweepSpec:
    where = f"[[sweep]] #{index + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("target"), str) or not entry["target"]:
        raise UserError(f"campaign: {where} needs target = a zoo name, a model file or a plan directory")
    target = entry["target"]
    name = str(entry.get("name") or Path(target).stem or target)
    _check_name(name, where)
    chosen = entry.get("kinds")
    if not isinstance(chosen, list) or not chosen or not all(isinstance(k, str) for k in chosen):
        raise UserError(f"campaign: {where} ({name}) needs kinds = the machine kinds it runs on, e.g. "
                        f"kinds = [\"{next(iter(kinds))}\"]")
    unknown = [k for k in chosen if k not in kinds]
    if unknown:
        raise UserError(f"campaign: {where} ({name}) names kind {unknown[0]!r}, which no [kinds.{unknown[0]}] "
                        f"defines (defined: {', '.join(kinds)})")
    known = {f for f in SweepSpec.__dataclass_fields__} - {"name", "target", "kinds"}
    extra = sorted(set(entry) - known - {"name", "target", "kinds"})
    if extra:
        raise UserError(f"campaign: {where} ({name}): unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")
    values = {k: entry[k] for k in known if k in entry}
    for key in ("batches", "warmup", "seed"):
        value = values.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key != "batches" else 1):
            raise UserError(f"campaign: {where} ({name}): {key} = {value!r} must be a whole number"
                            f"{' from 1' if key == 'batches' else ', 0 or more'}")
    shape = values.get("shape", [])
    shape = [shape] if isinstance(shape, str) else shape
    if not isinstance(shape, list) or not all(isinstance(s, str) for s in shape):
        raise UserError(f"campaign: {where} ({name}): shape = {values['shape']!r} must be INPUT:SIZES or a list of "
                        "them, e.g. shape = [\"input_ids:128\"] (as sweep's --shape)")
    if shape:
        from ..shapes import parse_shapes

        parse_shapes(shape)
        values["shape"] = tuple(shape)
    values["input_data"] = _input_data(values.get("input_data", "random"), f"{where} ({name})")
    if values["input_data"] != "random" and values.get("platform"):
        raise UserError(f"campaign: {where} ({name}): input_data with a platform: the platform's task times are its "
                        "own, not learnt on inputs; drop one of them")
    for key in ("workers", "batch", "rate", "system", "policy", "engine", "platform"):
        if key in values and not isinstance(values[key], str):
            values[key] = ",".join(map(str, values[key])) if isinstance(values[key], list) else str(values[key])
    if values.get("platform") and "workers" in values:
        raise UserError(f"campaign: {where} ({name}): workers and platform: the platform file says which workers "
                        "the simulated machine has; drop one of them")
    if values.get("platform") and values.get("engine", "real") != "sim":
        raise UserError(f"campaign: {where} ({name}): platform describes a machine for the simulator: add "
                        "engine = \"sim\"")
    if values.get("engine", "real") not in ("real", "sim"):
        raise UserError(f"campaign: {where} ({name}): engine = {values['engine']!r}: real or sim")
    batch = values.get("batch", "1,2,4")
    if not all(n.strip().isdigit() and int(n) >= 1 for n in batch.split(",")):
        raise UserError(f"campaign: {where} ({name}): batch = {batch!r}: batch sizes from 1, e.g. \"1,2,4\"")
    rate = values.get("rate", "auto")
    given = rate.partition(",")[2] if rate.partition(",")[0].strip() == "auto" else rate
    if rate != "auto" and given.strip() and not all(_number(r) for r in re.split(r"[,:]", given)):
        raise UserError(f"campaign: {where} ({name}): rate = {rate!r}: auto, auto,250, START:STOP:STEP or a list")
    spec = SweepSpec(name, target, tuple(dict.fromkeys(chosen)), **values)
    _check_on_a_node(spec, "policy" in values, f"campaign: {where} ({name}): ")
    return spec


def _check_on_a_node(spec: SweepSpec, policy_given: bool, prefix: str) -> None:
    """What a node would refuse after the job reached it (a rate of 0, a misspelt layout or policy): refused here,
    in one line, before Ray starts. Whether a node has the cores a layout asks for is the node's to say."""
    from ..runtime.policies import make_policy
    from ..runtime.workers import parse_workers
    from ..sweep.checks import check_grid
    from ..systems import check_system_engine

    try:
        if spec.workers != "auto":
            parse_workers(spec.workers, list(range(1 << 16)), cuda_usable=True)
        make_policy(spec.policy)
        check_system_engine(spec.system, spec.engine)
        if spec.system != "staronnx" and policy_given:
            raise UserError(f"--policy = {spec.policy!r} applies to system staronnx: {spec.system} places queries "
                            "its own way; drop policy")
        check_grid(spec.settings())  # parses the rates too
    except UserError as exc:
        raise UserError(prefix + campaign_words(str(exc))) from None


SWEEP_KEYS = "|".join(f for f in SweepSpec.__dataclass_fields__ if f not in ("name", "target", "kinds"))


def campaign_words(text: str) -> str:
    """A sweep's refusal in a campaign's words: its options named as the [[sweep]] keys they are (--rate: rate),
    other commands' options (split's --method) left as they are."""
    return re.sub(rf"--({SWEEP_KEYS}|max-hours)\b", r"\1", text)


def _input_data(given, where: str) -> str:
    """random, zeros, or a samples file's path (checked, against its model, when the jobs are shipped)."""
    if not isinstance(given, str) or not given.strip():
        raise UserError(f"campaign: {where}: input_data = {given!r} must be \"random\", \"zeros\" or a samples "
                        "file's path, e.g. input_data = \"samples.npz\" (as sweep's --input-data)")
    return given.strip().lower() if given.strip().lower() in ("random", "zeros") else given


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _check_name(name: str, where: str) -> None:
    if not NAME.fullmatch(name) or name in (".", ".."):  # '..' named the folder above -o
        raise UserError(f"campaign: {where}: name {name!r} must be 1 to 64 letters, digits, '_', '-' or '.' (it "
                        "names a folder)")
