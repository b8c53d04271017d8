"""Platform files: a machine for the simulated engine (workers, task times, transfers, overheads), in TOML.

```toml
name = "this machine"
estimate = false                      # true when the figures are derived, not measured
notes = "where the figures come from"

[[workers]]                           # repeated; `count` workers of this shape
kind = "cpu"                          # cpu or cuda
count = 2
cores = 1                             # cpu: cores per worker (performance-model kind cpu:<cores>)
streams = 1                           # cuda: workers per GPU (cuda:0x2; `count` is then GPUs), one memory node

[transfer]                            # between different memory nodes (host, cuda:0, ...)
bandwidth_GBps = 12.0
latency_us = 10.0

[overhead]
task_us = 20.0                        # added to every task: dispatch, wake-up, framework

[[times]]                             # measured: one row per (part, kind, batch)
part = 0
kind = "cpu:1"
batch = 1
mean_ms = 14.2
std_ms = 0.3

[[speeds]]                            # or derived: a profile's per-node costs, scaled (see sim_times)
kind = "cuda"
costs = "costs_cpu.csv"               # relative to this file; {model} = the swept model's name
device = "cpu:1"                      # which device's rows of that file
factor = 0.05                         # every node's time x this ...
op_factors = { Conv = 0.03 }          # ... or x this for an op type
node_us = 6.0                         # plus a fixed cost per node (kernel launch)
```

Batch sizes without a time are interpolated linearly between the nearest measured ones, extrapolated
along the last segment, or proportionally from a single one (stated in `describe`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..kinds import KINDS, WorkerKind, is_kind_key, kind_named
from ..outputfile import write_text_atomic
from ..tomlfile import read_toml
from .transfer import Link
from .workers import WorkerSpec


@dataclass(frozen=True)
class WorkerGroup:
    kind: WorkerKind
    count: int  # workers; of a GPU kind: GPUs
    cores: int
    streams: int = 1  # of a GPU kind: workers per GPU (cuda:0x2), sharing its memory

    @property
    def kind_key(self) -> str:
        return self.kind.key(self.cores)

    @property
    def on_gpu(self) -> bool:
        return self.kind.on_gpu


HOST_MODELS = "from this host's performance models"  # run.json's platform of `--engine sim` without --platform


@dataclass(frozen=True)
class TimeRow:
    part: int
    kind: str  # kind key: cpu:<cores> or cuda
    batch: int
    mean_ms: float
    std_ms: float = 0.0


@dataclass(frozen=True)
class Speed:
    kind: str
    costs: Path
    device: str
    factor: float = 1.0
    op_factors: dict = field(default_factory=dict)
    node_us: float = 0.0


@dataclass
class Platform:
    name: str
    workers: list[WorkerGroup]
    bandwidth_GBps: float = 12.0
    latency_us: float = 10.0
    task_us: float = 0.0
    times: list[TimeRow] = field(default_factory=list)
    speeds: list[Speed] = field(default_factory=list)
    estimate: bool = False
    notes: str = ""
    path: Path | None = None
    target_sha256: str = ""  # [[times]] measured on one model (or plan): its sha256, checked by the simulator
    model_sha256: str = ""  # and that model's (a plan's source): held against a target given on trust
    ray_resources: dict[str, float] = field(default_factory=dict)  # [ray]: what a node of this machine advertises

    @property
    def link(self) -> Link:
        return Link(self.bandwidth_GBps * 1e9, self.latency_us / 1e6)

    @property
    def workers_spec(self) -> str:
        """The same workers in --workers syntax (cpu:GxK, cuda:ID), for run.json and labels."""
        items, gpu = [], 0
        for g in self.workers:
            if not g.on_gpu:
                items.append(f"cpu:{g.count}x{g.cores}")
            else:
                items += [f"cuda:{gpu + i}" + (f"x{g.streams}" if g.streams > 1 else "") for i in range(g.count)]
                gpu += g.count
        return ",".join(items)


def groups_of(workers: list[WorkerSpec]) -> list[WorkerGroup]:
    """Workers as a platform's groups: CPU workers by their cores, GPUs by how many workers each drives."""
    sizes: dict[tuple[WorkerKind, int], int] = {}
    per_gpu: dict[int, int] = {}
    for w in workers:
        if w.on_gpu:
            per_gpu[w.device_id] = per_gpu.get(w.device_id, 0) + 1
        else:
            sizes[(w.kind, len(w.cores) or 1)] = sizes.get((w.kind, len(w.cores) or 1), 0) + 1
    gpus = [WorkerGroup(next(w.kind for w in workers if w.on_gpu), list(per_gpu.values()).count(streams), 1, streams)
            for streams in sorted(set(per_gpu.values()))]
    return gpus + [WorkerGroup(kind, count, cores) for (kind, cores), count in sizes.items()]


MAX_GROUP_WORKERS = 256  # workers of one [[workers]] group (the simulator builds one per worker)
MAX_WORKER_CORES = 1024  # cores of one worker


MAX_FIGURE = 1e9  # any figure of a platform file (a time in ms or us, a factor, GB/s): beyond, a typo, and products
# of such figures overflow (factor = 1e308 was an internal error)


def _number(table: dict, key: str, where: str, default=None, minimum: float | None = None, integer=False):
    value = table.get(key, default)
    if value is None:
        raise UserError(f"platform: {where} needs '{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise UserError(f"platform: {where}: '{key}' must be a{'n integer' if integer else ' number'}, not {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"platform: {where}: '{key}' = {value} must be at least {minimum:g}")
    if not math.isfinite(value):
        raise UserError(f"platform: {where}: '{key}' must be finite")
    if value > MAX_FIGURE:
        raise UserError(f"platform: {where}: '{key}' = {value:g} is more than {MAX_FIGURE:g}: check the figure")
    return value


KEYS = {  # every key a platform file may hold, per table: anything else is a typo, said rather than ignored
    "": ("name", "estimate", "notes", "target_sha256", "model_sha256", "workers", "transfer", "overhead", "ray",
         "times", "speeds"),
    "[[workers]]": ("kind", "count", "cores", "streams"), "[transfer]": ("bandwidth_GBps", "latency_us"),
    "[overhead]": ("task_us",), "[ray]": ("resources",), "[[times]]": ("part", "kind", "batch", "mean_ms", "std_ms"),
    "[[speeds]]": ("kind", "costs", "device", "factor", "op_factors", "node_us"),
}


def _known(table, section: str, where: str) -> dict:
    """`table` as a dict whose keys are all known for `section`; else one line naming the key and the closest."""
    import difflib

    if not isinstance(table, dict):
        raise UserError(f"platform: {where} must be a table of keys (docs/sim.md: platform files)")
    for key in table:
        if key not in KEYS[section]:
            close = difflib.get_close_matches(str(key), KEYS[section], 1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(KEYS[section])}"
            raise UserError(f"platform: {where or 'the file'}: unknown key {key!r}: {hint}")
    return table


def _entries(data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise UserError(f"platform: {key} must be written as [[{key}]] entries (docs/sim.md: platform files)")
    return value


def parse_platform(data: dict, path: Path | None = None) -> Platform:
    """Validate a platform's TOML table: one clear error naming the entry and the fix."""
    _known(data, "", "")
    groups = []
    for i, w in enumerate(_entries(data, "workers")):
        where = f"[[workers]] #{i + 1}"
        kind = _known(w, "[[workers]]", where).get("kind")
        if kind not in KINDS:
            raise UserError(f"platform: {where}: kind {kind!r} is not a worker kind: write kind = \"cpu\" or \"cuda\"")
        count, cores = _number(w, "count", where, 1, 1, True), _number(w, "cores", where, 1, 1, True)
        for key, value, most in (("count", count, MAX_GROUP_WORKERS), ("cores", cores, MAX_WORKER_CORES)):
            if value > most:  # checked before any worker or core list is built from it
                raise UserError(f"platform: {where}: {key} = {value} is more than {most}: a machine to simulate has "
                                f"at most {MAX_GROUP_WORKERS} workers of a kind and {MAX_WORKER_CORES} cores a worker")
        streams = _number(w, "streams", where, 1, 1, True)
        if streams > 1 and not kind_named(kind).on_gpu:
            raise UserError(f"platform: {where}: streams = {streams} is for GPU workers (several on one GPU): give "
                            "CPU workers count instead")
        if count * streams > MAX_GROUP_WORKERS:
            raise UserError(f"platform: {where}: count x streams = {count * streams} is more than "
                            f"{MAX_GROUP_WORKERS} workers")
        groups.append(WorkerGroup(kind_named(kind), count, cores, streams))
    if not groups:
        raise UserError("platform: no [[workers]]: add e.g. [[workers]] kind = \"cpu\" count = 2 cores = 1")
    transfer = _known(data.get("transfer", {}), "[transfer]", "[transfer]")
    overhead = _known(data.get("overhead", {}), "[overhead]", "[overhead]")
    bandwidth = _number(transfer, "bandwidth_GBps", "[transfer]", 12.0)
    if bandwidth <= 0:
        raise UserError(f"platform: [transfer]: bandwidth_GBps = {bandwidth} must be positive (GB/s)")
    times = _times(data)
    estimate = data.get("estimate", False)
    if not isinstance(estimate, bool):  # estimate = "no" read as true
        raise UserError(f"platform: estimate = {estimate!r} must be true or false")
    speeds = [_speed(entry, f"[[speeds]] #{i + 1}", path) for i, entry in enumerate(_entries(data, "speeds"))]
    return Platform(str(data.get("name", path.stem if path else "platform")), groups, bandwidth,
                    _number(transfer, "latency_us", "[transfer]", 10.0, 0),
                    _number(overhead, "task_us", "[overhead]", 0.0, 0), times, speeds,
                    estimate, str(data.get("notes", "")), path,
                    str(data.get("target_sha256", "")), str(data.get("model_sha256", "")), _ray_resources(data))


def _times(data: dict) -> list[TimeRow]:
    """The [[times]] entries, checked, each (part, kind, batch) once."""
    times = []
    for i, t in enumerate(_entries(data, "times")):
        where = f"[[times]] #{i + 1}"
        kind = str(_known(t, "[[times]]", where).get("kind", ""))
        if not is_kind_key(kind):
            raise UserError(f"platform: {where}: kind {kind!r} must be cuda or cpu:<cores>")
        times.append(TimeRow(_number(t, "part", where, None, 0, True), kind, _number(t, "batch", where, None, 1, True),
                             _number(t, "mean_ms", where, None, 0), _number(t, "std_ms", where, 0.0, 0)))
        if times[-1].mean_ms <= 0:  # no task takes no time: latencies of 0.00 ms and no capacity followed
            raise UserError(f"platform: {where}: 'mean_ms' = {times[-1].mean_ms:g}: a task takes some time; give "
                            "its mean in ms, more than 0")
        first = next(j for j, r in enumerate(times) if (r.part, r.kind, r.batch) == (times[-1].part, kind,
                                                                                      times[-1].batch))
        if first < i:  # the later one replaced the earlier without a word
            raise UserError(f"platform: {where} repeats [[times]] #{first + 1} (part {times[-1].part}, kind {kind}, "
                            f"batch {times[-1].batch}): keep one of them")
    return times


def _speed(s, where: str, path: Path | None) -> Speed:
    """A [[speeds]] entry: a profile's costs x factor (per op type too), checked."""
    if "costs" not in _known(s, "[[speeds]]", where) or "kind" not in s:
        raise UserError(f"platform: {where} needs kind and costs (a costs.csv of staronnx profile)")
    costs = Path(s["costs"])  # may hold {model}: the target model's name
    if path is not None and not costs.is_absolute():
        costs = path.parent / costs
    factors = s.get("op_factors", {})
    if not isinstance(factors, dict):
        raise UserError(f"platform: {where}: op_factors must be a table of operator types, e.g. "
                        "op_factors = { Conv = 0.5 }")
    for op, f in factors.items():
        if _number({op: f}, op, f"{where} op_factors", None, 0) == 0:
            raise UserError(f"platform: {where} op_factors: {op} = 0 would make its nodes take no time: give a "
                            "positive speed ratio")
    if _number(s, "factor", where, 1.0, 0) == 0:
        raise UserError(f"platform: {where}: factor = 0 would make every node take no time: give a positive "
                        "speed ratio (0.5: twice as fast)")
    return Speed(str(s["kind"]), costs, str(s.get("device", "")), _number(s, "factor", where, 1.0, 0),
                 dict(factors), _number(s, "node_us", where, 0.0, 0))


def _ray_resources(data: dict) -> dict[str, float]:
    """[ray] resources = { h100 = 1 }: the Ray resources a node of this machine has (advise --ray confirms there)."""
    table = _known(data.get("ray", {}), "[ray]", "[ray]")
    resources = table.get("resources", {})
    if not isinstance(resources, dict):
        raise UserError("platform: [ray] resources must be a table, e.g. resources = { h100 = 1 }")
    return {str(k): float(_number(resources, k, "[ray] resources", None, 0)) for k in resources}


def read_platform(path: Path) -> Platform:
    return parse_platform(read_toml(path, "platform file", "write one (docs/sim.md: platform files) or capture this "
                                    "machine with 'staronnx platform from-run RUN_DIR'"), path)


def check_times_target(p: Platform, named: str, sha256: str, parts: int, trust: bool, model_sha256: str = "") -> bool:
    """May p's [[times]] be used for this target (its sha256, its number of parts, its source model's sha256)?
    Yes when they were captured from it; on trust (--trust-platform) when they have as many parts, of the same
    model where the platform names it: the same split made again elsewhere, whose plan.json names other paths.
    Returns whether they are used on trust; `named`: the platform as the user gave it, for the refusal."""
    theirs = 1 + max((t.part for t in p.times), default=parts - 1)
    other = bool(p.target_sha256) and p.target_sha256 != sha256
    if other and theirs != parts:  # else part_times says which part is missing or extra ([[speeds]] may fill)
        raise UserError(f"{named}: its task times are of {theirs} part(s), this target has {parts}: give the model "
                        "or plan directory its times were captured from")
    source = p.model_sha256 or (p.target_sha256 if theirs == 1 else "")  # times of one part: of a model itself
    if other and source and model_sha256 and source != model_sha256:
        raise UserError(f"{named}: its task times are of another model (sha256 {source[:12]}, this target's "
                        f"{model_sha256[:12]}): give the model they were captured from, or capture a platform here")
    if not other:
        return False
    if not trust:
        raise UserError(f"{named}: its task times are of another model or plan (sha256 {p.target_sha256[:12]}, "
                        f"this target {sha256[:12]}): give the plan directory they were captured from, or capture "
                        "a platform from a run of this target; if this is the same split made again (same model, "
                        "costs and offload: plan.json differs in its paths), add --trust-platform")
    return True


# -- writing ----------------------------------------------------------------------------------------------
def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(round(v, 9)) if isinstance(v, float) else str(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _key(k: str) -> str:
    """A TOML key: bare where it may be (letters, digits, '_', '-'), else quoted (a Ray resource such as
    accelerator_type:H100)."""
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _value(k)


def dump_platform(p: Platform) -> str:
    """TOML text of a platform (a small emitter: tomllib reads, nothing in the standard library writes)."""
    lines = [f"name = {_value(p.name)}", f"estimate = {_value(p.estimate)}", f"notes = {_value(p.notes)}"]
    if p.target_sha256:
        lines.append(f"target_sha256 = {_value(p.target_sha256)}  # the model or plan its [[times]] belong to")
    if p.model_sha256:
        lines.append(f"model_sha256 = {_value(p.model_sha256)}  # that model (a plan's source model)")
    lines.append("")
    for g in p.workers:
        lines += ["[[workers]]", f"kind = {_value(g.kind)}", f"count = {g.count}", f"cores = {g.cores}",
                  *([f"streams = {g.streams}"] if g.streams > 1 else []), ""]
    lines += ["[transfer]", f"bandwidth_GBps = {_value(float(p.bandwidth_GBps))}",
              f"latency_us = {_value(float(p.latency_us))}", "", "[overhead]", f"task_us = {_value(float(p.task_us))}",
              ""]
    if p.ray_resources:
        lines += ["[ray]", f"resources = {_value(p.ray_resources)}", ""]
    for t in p.times:
        lines += ["[[times]]", f"part = {t.part}", f"kind = {_value(t.kind)}", f"batch = {t.batch}",
                  f"mean_ms = {_value(float(t.mean_ms))}", f"std_ms = {_value(float(t.std_ms))}", ""]
    for s in p.speeds:
        lines += ["[[speeds]]", f"kind = {_value(s.kind)}", f"costs = {_value(str(s.costs))}",
                  f"device = {_value(s.device)}", f"factor = {_value(float(s.factor))}"]
        if s.op_factors:
            lines.append(f"op_factors = {_value(s.op_factors)}")
        lines += [f"node_us = {_value(float(s.node_us))}", ""]
    return "\n".join(lines)


def write_platform(p: Platform, path: Path) -> None:
    write_text_atomic(path, dump_platform(p))


# -- time of a part at any batch size ----------------------------------------------------------------------
def interpolate(points: dict[int, float], batch: int) -> float:
    """Linear in the batch size between measured ones, extended along the last segment; proportional from one.
    Outside the measured range never below what batching allows: a larger batch takes at least the largest
    measured one's time, a smaller one at least the smallest's per query (a segment that falls, measured times
    decreasing with N, extended to 0.1 ms at N=8 where N=4 took 3.09 ms)."""
    sizes = sorted(points)
    if batch in points:
        return points[batch]
    if len(sizes) == 1:
        return points[sizes[0]] * batch / sizes[0]
    lo = max((s for s in sizes if s < batch), default=sizes[0])
    hi = min((s for s in sizes if s > batch), default=sizes[-1])
    floor = 0.0
    if lo == hi:  # outside the measured range: the nearest segment
        lo, hi = (sizes[0], sizes[1]) if batch < sizes[0] else (sizes[-2], sizes[-1])
        floor = points[sizes[0]] * batch / sizes[0] if batch < sizes[0] else points[sizes[-1]]
    slope = (points[hi] - points[lo]) / (hi - lo)
    return max(points[lo] + slope * (batch - lo), floor)


def falling_times(p: Platform) -> list[str]:
    """Where a platform's times fall as the batch grows (part, kind, the two sizes and times): noise, or a file
    edited by hand; `platform check` says so."""
    by_key: dict[tuple[int, str], list[TimeRow]] = {}
    for t in p.times:
        by_key.setdefault((t.part, t.kind), []).append(t)
    found = []
    for (part, kind), rows in sorted(by_key.items()):
        rows.sort(key=lambda t: t.batch)
        found += [f"part {part} on {kind}: {a.mean_ms:g} ms at N={a.batch}, {b.mean_ms:g} ms at N={b.batch}"
                  for a, b in zip(rows, rows[1:]) if b.mean_ms < a.mean_ms]
    return found
