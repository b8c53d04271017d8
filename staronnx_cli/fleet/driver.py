"""The fleet's Ray driver, in a child process (rayproc): it submits each job to a node of its kind, forwards each
point's rows to staronnx as they arrive (an inbox queue on the driver's own node, which outlives any worker node),
and says when a job ended, failed, or was lost with its node. staronnx decides what to retry and writes every file."""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError, first_line
from ..rayproc import enter_child, init_ray, kill_session, need_ray, reachable
from .campaign import Kind, SweepSpec
from .job import run_job

START_S = 120.0  # a local Ray instance or a cluster's answer, within this
NODES_EVERY_S = 1.0  # how often the driver looks for jobs whose kind has no node left


@dataclass(frozen=True)
class Submit:
    key: str
    spec: SweepSpec
    kind: Kind
    ship: str  # the id of the shipped files (one per target), sent once before
    held: dict[str, str]
    resources: dict[str, float]
    attempt: int


class FleetDriver:
    """staronnx's side: start the child, ship files, submit jobs, receive (event, key, ...) tuples."""

    def __init__(self, address: str | None, log: Path):
        need_ray("fleet", "run the sweeps one by one with staronnx sweep")
        if address and address != "auto":
            reachable(address)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        context = multiprocessing.get_context("spawn")  # a clean interpreter: nothing of this one's threads
        self.conn, theirs = context.Pipe()
        self.child = context.Process(target=_driver, args=(theirs, address, str(log)), daemon=True)
        self.child.start()
        theirs.close()
        kind, value = self.receive(START_S)
        if kind != "ready":
            self.kill()
            raise UserError(value)
        self.nodes: dict[str, dict[str, float]] = value  # alive node id -> its resources

    def ship(self, ship_id: str, files: dict[str, bytes]) -> None:
        self.conn.send(("ship", (ship_id, files)))

    def submit(self, job: Submit) -> None:
        self.conn.send(("submit", job))

    def receive(self, timeout_s: float | None) -> tuple:
        """The child's next message, or ("idle",) after `timeout_s`; its death is one line naming the log."""
        if not self.conn.poll(timeout_s):
            if not self.child.is_alive():
                return "error", f"fleet: the Ray driver stopped (exit {self.child.exitcode}): see {self.log}"
            return ("idle",)
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return "error", f"fleet: the Ray driver stopped: see {self.log}"

    def stop(self) -> None:
        if self.child.is_alive():
            try:
                self.conn.send(("stop", None))
                self.child.join(10.0)
            except (OSError, ValueError):
                pass
        self.kill()

    def kill(self) -> None:
        kill_session(self.child)
        self.conn.close()


def _driver(conn, address: str | None, log: str) -> None:
    enter_child(log, f"staronnx fleet: Ray driver, pid {os.getpid()}, address {address or 'a local instance'}")
    said = init_ray(address, "--ray-address", log)
    if said:
        conn.send(("error", f"fleet: {said}"))
        return
    import ray
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    pinned = NodeAffinitySchedulingStrategy(here, soft=False)  # the inbox outlives any worker node
    inbox = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": pinned})
    task = ray.remote(run_job)
    conn.send(("ready", _alive()))
    shipped: dict[str, Any] = {}  # ship id -> its files in Ray's object store
    running: dict[object, Submit] = {}
    looked = time.monotonic()
    while True:
        while conn.poll(0 if running else 0.05):
            what, payload = conn.recv()
            if what == "stop":
                ray.shutdown()
                return
            if what == "ship":
                shipped[payload[0]] = ray.put(payload[1])
                continue
            job: Submit = payload
            real = job.spec.engine == "real"  # a real sweep holds its node (its kind's resources); a simulation
            # takes one CPU of any node of its kind, spread over them, as many at once as they have CPUs
            ref = task.options(num_cpus=0 if real else 1, resources=job.resources, max_retries=0,
                               scheduling_strategy="DEFAULT" if real else "SPREAD").remote(
                job.key, job.spec, shipped[job.ship], job.held, inbox, job.attempt, job.kind.name)
            running[ref] = job
            conn.send(("submitted", job.key))
        _forward(inbox, conn)
        if running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            _forward(inbox, conn)  # a job's last points before it is said to have ended
            for ref in ready:
                job = running.pop(ref)
                try:
                    conn.send(("done", job.key, ray.get(ref)))
                except Exception as exc:  # noqa: BLE001 - a node lost, a sweep failed: staronnx decides
                    raised = isinstance(getattr(exc, "cause", None), BaseException)  # by the sweep, on its node
                    conn.send(("failed" if raised else "lost", job.key, _why(exc)))
        if running and time.monotonic() - looked > NODES_EVERY_S:
            looked = time.monotonic()
            _strand(running, conn)


def _why(exc: BaseException) -> str:
    """A failed task in one line: the exception raised in it (Ray wraps it, its first line the task's name and pid,
    in terminal colours), else Ray's own (a node lost, a worker killed)."""
    cause = getattr(exc, "cause", None)
    said = first_line(exc)
    if isinstance(cause, BaseException):  # a user's error is its message; anything else says what it is
        said = first_line(cause) if isinstance(cause, UserError) else f"{type(cause).__name__}: {first_line(cause)}"
    return re.sub(r"\x1b\[[0-9;]*m", "", said)


def _forward(inbox, conn) -> None:
    from ray.util.queue import Empty

    while True:
        waiting = inbox.qsize()
        if not waiting:
            return
        try:
            items = inbox.get_nowait_batch(min(waiting, 64))  # it refuses to take more than there are
        except Empty:
            return
        for item in items:
            conn.send(item)


def _alive() -> dict[str, dict[str, float]]:
    import ray

    return {n["NodeID"]: dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")}


def _strand(running: dict, conn) -> None:
    """Jobs whose kind no alive node has any more would wait forever: cancelled, and said lost."""
    import ray

    nodes = _alive()
    for ref, job in list(running.items()):
        if not any(all(resources.get(r, 0) >= amount for r, amount in job.kind.resources.items())
                   for resources in nodes.values()):
            ray.cancel(ref, force=True)
            running.pop(ref)
            conn.send(("lost", job.key, f"no node of kind {job.kind.name} is left in the cluster"))
