"""`staronnx fleet CAMPAIGN.toml -o DIR`: every (sweep, machine kind) job of a campaign on a node of its kind of a Ray
cluster, each point's rows written here as they arrive (DIR/SWEEP/KIND is a run directory like any sweep's), a
job lost with its node retried on another node of its kind from the points already here, and a rerun of the
campaign doing only what is not done."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError, json_text
from ..outputfile import write_text_atomic
from ..results.rundir import RunDir
from ..results.schema import RUN_FILES
from ..runtime.policies import check_policy_parts, make_policy
from ..split.plan import read_plan
from ..systems import check_system_target
from .campaign import Campaign, Job, SweepSpec, campaign_words, read_campaign
from .driver import FleetDriver, Submit
from .job import held_files

STATE = "fleet.json"
STATE_VERSION = 1
MAX_ATTEMPTS = 3  # a job lost this many times (nodes lost, sweeps failed) is given up, said


@dataclass
class FleetSettings:
    campaign: Path
    output: Path
    ray_address: str | None = None
    max_attempts: int = MAX_ATTEMPTS


@dataclass
class FleetProgress:
    jobs: int
    done: int = 0
    running: int = 0
    failed: int = 0
    points: int = 0
    lines: list[str] = field(default_factory=list)  # what happened, for the screen
    seconds_left: float | None = None  # of scheduled arrivals, over the jobs running at once (None: not known yet)
    scheduled: dict[str, tuple[float, float]] = field(default_factory=dict)  # job -> arrivals' seconds done, planned

    def estimate(self) -> None:
        """Seconds left: what the running jobs still have to release, and the queued ones as many as the jobs
        planned so far on average, over the jobs running at once (the sweeps' own ETA, summed)."""
        if not self.scheduled:
            return
        left = sum(total - done for done, total in self.scheduled.values())
        mean = sum(total for _, total in self.scheduled.values()) / len(self.scheduled)
        queued = max(0, self.jobs - self.done - self.failed - len(self.scheduled))
        self.seconds_left = (left + queued * mean) / max(1, min(self.running, len(self.scheduled)))


def run_fleet(s: FleetSettings, on_progress: Callable[[FleetProgress], None] = lambda p: None) -> FleetProgress:
    campaign = read_campaign(s.campaign)
    ships = _shipments(campaign)
    state = _state(s.output, campaign)
    todo = [job for job in campaign.jobs if state["jobs"][job.key]["status"] != "done"]
    progress = FleetProgress(len(campaign.jobs), done=len(campaign.jobs) - len(todo))
    if not todo:
        progress.lines.append(f"every job of {campaign.name} is done in {s.output}: nothing to run")
        return progress
    driver = FleetDriver(s.ray_address, s.output / "ray.log")
    try:
        _check_kinds(campaign, driver.nodes)
        for ship_id, files in ships.items():
            driver.ship(ship_id, files)
        for job in todo:
            _submit(driver, job, state, s.output)
        progress.running = len(todo)
        on_progress(progress)
        _collect(driver, s, campaign, state, progress, on_progress)
    except BaseException:  # Ctrl-C, an error: the driver killed at once, which ends its jobs on the cluster
        driver.kill()
        raise
    driver.stop()
    return progress


def _collect(driver: FleetDriver, s: FleetSettings, campaign: Campaign, state: dict, progress: FleetProgress,
             on_progress) -> None:
    """Events until every job is done or given up; each written before the next is read."""
    jobs = {job.key: job for job in campaign.jobs}
    order: dict[str, dict] = {}  # per job: its attempt, the next point's number, and those that came early
    while progress.running:
        event = driver.receive(1.0)
        if event[0] == "idle":
            continue
        if event[0] == "error":
            raise UserError(event[1])
        kind, key = event[0], event[1]
        record = state["jobs"][key]
        run = RunDir(s.output / key)
        if kind == "submitted":
            record["status"] = "running"
        elif kind == "progress":
            if event[4] == record["attempts"] + 1 and record["status"] != "done":  # the inbox may reorder
                progress.scheduled[key] = (event[2], event[3])
                progress.estimate()
        elif kind == "point":
            record["running_on"] = event[5]
            if event[6][0] == record["attempts"] + 1:  # a lost attempt's late points are measured again instead
                progress.points += _in_order(run, order.setdefault(key, {}), event)
        elif kind == "done":
            result = event[2]
            mine = order.get(key, {})  # this attempt's points (a lost attempt's count for nothing)
            arrived = mine.get("next", 0) if mine.get("attempt") == result["attempt"] else 0
            if arrived != result["points_sent"]:
                raise UserError(f"fleet: job {key} sent {result['points_sent']} points, {arrived} arrived: see "
                                f"{s.output / 'ray.log'}")
            write_text_atomic(run.run_json, result["run_json"], "free space, then run the campaign again")
            record.update(status="done", nodes=record["nodes"] + [result["ray_node_id"]], host=result["host"],
                          started=result["started"], ended=result["ended"])
            progress.done, progress.running = progress.done + 1, progress.running - 1
            progress.scheduled.pop(key, None)
            progress.estimate()
            progress.lines.append(f"{key}: done on {result['host']} (Ray node {result['ray_node_id'][:8]})")
        elif kind in ("lost", "failed"):  # its node went, or its sweep raised there (the node may be the cause)
            _lost(driver, jobs[key], record, event[2], s, progress, state, kind)
        _write_state(s.output, state)
        on_progress(progress)


def _in_order(run: RunDir, order: dict, event: tuple) -> int:
    """A point's rows written in the order the job committed them (the inbox may reorder them); early ones wait.
    Returns the count of point rows written."""
    attempt, number = event[6]
    if order.get("attempt") != attempt:  # a new attempt numbers its points from 0
        order.update(attempt=attempt, next=0, early={})
    order["early"][number] = event
    written = 0
    while order["next"] in order["early"]:
        _, _, run_json, points, batches, _, _ = order["early"].pop(order["next"])
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.run_json, run_json, "free space, then run the campaign again")
        run.append_batches(batches)
        run.append_points(points)  # the commit, as in a local sweep
        written += len(points)
        order["next"] += 1
    return written


def _lost(driver, job: Job, record: dict, why: str, s: FleetSettings, progress: FleetProgress, state: dict,
          how: str = "lost") -> None:
    record["attempts"] += 1
    progress.scheduled.pop(job.key, None)
    record["why"] = why
    if record["attempts"] < s.max_attempts and "no node of kind" not in why:
        progress.lines.append(f"{job.key}: {how} ({why}); resumed on another node of kind {job.kind.name}")
        _submit(driver, job, state, s.output)
        return
    record["status"] = "failed"
    progress.failed, progress.running = progress.failed + 1, progress.running - 1
    progress.lines.append(f"{job.key}: given up after {record['attempts']} attempt(s): {why}")


def _submit(driver: FleetDriver, job: Job, state: dict, output: Path) -> None:
    record = state["jobs"][job.key]
    record["status"] = "queued"
    driver.submit(Submit(job.key, job.sweep, job.kind, _ship_id(job), held_files(output / job.key),
                         job.resources, record["attempts"] + 1))


def _ship_id(job: Job) -> str:
    shape = f"|{' '.join(job.sweep.shape)}" if job.sweep.shape else ""
    data = f"|{job.sweep.input_data}" if job.sweep.input_data != "random" else ""
    return f"{job.sweep.target}|{job.sweep.platform}{shape}{data}"


def _shipments(campaign: Campaign) -> dict[str, dict[str, bytes]]:
    """What each job needs on a node without this machine's files: its model or plan, and its platform; a zoo
    model is built there from its seed instead. Read (and checked) before anything runs."""
    from ..zoo.registry import ZOO

    here = campaign.path.parent
    ships: dict[str, dict[str, bytes]] = {}
    shapes: dict[str, tuple[int, str]] = {}  # each target's parts and split method ("" for a model)
    for job in campaign.jobs:
        ship_id, spec = _ship_id(job), job.sweep
        if ship_id in ships:
            _check_target(spec, *shapes[ship_id])
            continue
        files: dict[str, bytes] = {}
        target = here / spec.target
        parts, method = 1, ""  # a model's, or its plan's
        if spec.shape:  # the copy with those sizes, made here and sent: the node sees a model with the batch free
            files["target.onnx"] = _shaped(spec, target).read_bytes()
        elif target.is_file():
            _check_inputs(spec, target)
            files["target.onnx"] = target.read_bytes()
        elif target.is_dir():
            if not (target / "plan.json").exists():
                raise UserError(f"campaign: [[sweep]] {spec.name}: '{target}' is a directory without plan.json: give "
                                "a plan directory of staronnx split")
            plan = read_plan(target)
            parts, method = len(plan.parts), plan.method
            files.update({f"target/{f.name}": f.read_bytes() for f in target.iterdir() if f.is_file()})
        elif spec.target not in ZOO:
            raise UserError(f"campaign: [[sweep]] {spec.name}: target '{spec.target}' is neither a file, a plan "
                            f"directory (relative to {here}) nor a zoo model ('staronnx zoo list' names them)")
        if spec.platform:
            platform = here / spec.platform
            if not platform.is_file():
                raise UserError(f"campaign: [[sweep]] {spec.name}: platform '{platform}' is not a file")
            files["platform.toml"] = platform.read_bytes()
        files.update(_samples(spec, here, files, target))
        ships[ship_id], shapes[ship_id] = files, (parts, method)
        _check_target(spec, parts, method)
    return ships


def _samples(spec: SweepSpec, here: Path, files: dict[str, bytes], target: Path) -> dict[str, bytes]:
    """A job's samples file (input_data), checked against the model it feeds (the one shipped, or the zoo's)
    before anything runs, and shipped under its own name (run.json names it so on every node)."""
    from ..inputdata import parse_input_data
    from ..sweep.checks import check_target_data
    from ..systems.target import load_target
    from ..zoo.cache import build_cached

    if spec.input_data in ("random", "zeros"):
        return {}
    where = f"campaign: [[sweep]] {spec.name}: input_data"
    data = parse_input_data(str(here / spec.input_data), where)
    with tempfile.TemporaryDirectory(prefix="staronnx-samples-") as tmp:
        if "target.onnx" in files or any(n.startswith("target/") for n in files):  # as the node will hold it
            for name, content in files.items():
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(content)
            shipped = Path(tmp) / ("target.onnx" if "target.onnx" in files else "target")
        else:
            shipped = build_cached(spec.target)[0] if not target.exists() else target
        try:
            check_target_data(data, load_target(shipped))
        except UserError as exc:
            raise UserError(f"campaign: [[sweep]] {spec.name}: {exc}") from None
    return {f"input_data/{Path(data.source).name}": Path(data.source).read_bytes()}


def _check_inputs(spec: SweepSpec, target: Path) -> None:
    """A model a node would refuse whatever the node (a free sequence length without shape = [...]): said here, once,
    not after three attempts on the cluster."""
    from .. import modelio

    try:
        modelio.input_specs(modelio.load_model(target, with_weights=False))
    except UserError as exc:
        raise UserError(f"campaign: [[sweep]] {spec.name}: {campaign_words(str(exc))}") from None


def _shaped(spec: SweepSpec, target: Path) -> Path:
    from ..shapes import shaped_model
    from ..zoo.names import resolve_model

    if target.is_dir():
        raise UserError(f"campaign: [[sweep]] {spec.name}: shape applies to a model: the parts of plan '{target}' have "
                        "the sizes split gave them")
    try:
        return shaped_model(resolve_model(str(target) if target.exists() else spec.target), list(spec.shape))
    except UserError as exc:
        raise UserError(f"campaign: [[sweep]] {spec.name}: {exc}") from None


def _check_target(spec: SweepSpec, parts: int, method: str) -> None:
    """What a node would refuse once it held the target (a baseline given a plan, a static policy with more kinds
    than parts): refused here, before Ray starts."""
    try:
        check_system_target(spec.system, parts, method)
        check_policy_parts(spec.policy, make_policy(spec.policy), parts)
    except UserError as exc:
        raise UserError(f"campaign: [[sweep]] {spec.name}: {campaign_words(str(exc))}") from None


def _check_kinds(campaign: Campaign, nodes: dict[str, dict[str, float]]) -> None:
    """A kind no node of the cluster has would leave its jobs waiting forever: one line instead."""
    for kind in campaign.kinds.values():
        if not any(job.kind is kind for job in campaign.jobs):
            continue
        if not any(all(r.get(k, 0) >= v for k, v in kind.resources.items()) for r in nodes.values()):
            raise UserError(f"fleet: no node of the cluster has the resources of kind {kind.name} "
                            f"({kind.resources}): start one with ray start --resources "
                            f"'{json.dumps({k: int(v) for k, v in kind.resources.items()})}', or drop the kind")


def _state(output: Path, campaign: Campaign) -> dict:
    """DIR/fleet.json: each job's status, attempts and nodes; begun here, or the one a rerun continues (a job whose
    settings changed since its points were measured is refused)."""
    path = output / STATE
    specs = {job.key: asdict(job.sweep) | {"kind": asdict(job.kind)} for job in campaign.jobs}
    if output.exists() and not output.is_dir():
        raise UserError(f"-o {output} is a file: fleet writes a folder: choose another -o")
    for own, what in (("run.json", "a sweep's run"), ("plan.json", "a plan"), ("advice.md", "an advice")):
        if (output / own).exists() and not path.exists():  # fleet.json beside them hid them from plot and report
            raise UserError(f"-o {output} is {what} directory: a campaign writes a folder of its own; choose "
                            "another -o")
    old = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise UserError(f"'{path}' is not a fleet state file (cut short or edited): use a new -o") from None
    jobs = {}
    for key, spec in specs.items():
        before = (old.get("jobs") or {}).get(key)
        if before and before.get("spec") != json.loads(json.dumps(spec)) and (output / key / RUN_FILES[1]).exists():
            raise UserError(f"fleet: job {key} in {output} was measured with other settings: use a new -o, or "
                            f"remove {output / key} to measure it again")
        jobs[key] = before or {"status": "queued", "attempts": 0, "nodes": [], "why": ""}
        jobs[key]["spec"] = spec
        if jobs[key]["status"] != "done":
            jobs[key].update(status="queued", attempts=0)
    state = {"fleet_version": STATE_VERSION, "campaign": str(campaign.path), "name": campaign.name,
             "campaign_sha256": hashlib.sha256(campaign.path.read_bytes()).hexdigest(), "jobs": jobs,
             "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    output.mkdir(parents=True, exist_ok=True)
    _write_state(output, state)
    return state


def _write_state(output: Path, state: dict) -> None:
    write_text_atomic(output / STATE, json_text(state), "free space, then run the campaign again")


def is_fleet(path: Path) -> bool:
    return (path / STATE).is_file()
