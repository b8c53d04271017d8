"""`advise --ray`: the search's simulations on a Ray cluster, behind the same `map` as the process pool, so the
same candidates and seed give the same rows whatever runs them. Ray is optional (the [ray] extra).

Ray's driver runs in a child process of its own session, never in staronnx's: its output (warnings, C++ logs,
a stack dump on SIGTERM) goes to a log file, not the user's screen; Ctrl-C and SIGTERM stay staronnx's and end the
search at once (the child killed: the Ray processes it started die with it, as Ray asks the kernel); an address
is checked to be a Ray cluster (its GCS answers) within seconds, where Ray itself retries for minutes.

Each task simulates one candidate and sends back its points (its run directory is written where the task
ran: on a cluster without a shared file system, only candidates.csv and advice.md hold the search)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from ..errors import UserError, first_line
from ..rayproc import enter_child, init_ray, kill_session, need_ray, reachable

START_S = 120.0  # a local Ray instance starts in seconds; beyond this, something is wrong
JOIN_S = 30.0  # joining a cluster whose GCS answered
STOP_S = 10.0  # a normal end: the child shuts Ray down within this, else it is killed


class RayPool:
    def __init__(self, address: str | None, simulate_args, log: Path):
        need_ray("--ray", "drop --ray to search on a local process pool")
        if address and address != "auto":
            reachable(address)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.address, self.log = address, log
        context = multiprocessing.get_context("spawn")  # a clean interpreter: nothing of this one's threads
        self.conn, theirs = context.Pipe()
        self.child = context.Process(target=_driver, args=(theirs, address, simulate_args, str(log)), daemon=True)
        self.child.start()
        theirs.close()
        kind, value = self._receive(JOIN_S if address else START_S, "start")
        if kind != "ready":
            self._kill()
            raise UserError(value)
        self.ray = True  # map_simulations: every simulation goes to the cluster, even one

    def map(self, fn, args) -> list:
        """Like Executor.map (fn is the task given at construction): results in the order of `args`."""
        self.conn.send(("map", list(args)))
        results = []
        for _ in args:
            kind, value = self._receive(None, "simulate")
            if kind != "point":
                self._kill()
                raise UserError(value)
            results.append(value)
        return results

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """`wait=False` (an interrupt, an error): the child and its Ray processes killed now."""
        if wait and self.child.is_alive():
            try:
                self.conn.send(("stop", None))
                self.child.join(STOP_S)
            except (OSError, ValueError):
                pass
        self._kill()

    def _receive(self, timeout_s: float | None, doing: str):
        """The child's next message; its death or silence is one line naming the log."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.conn.poll(0.1):
            if not self.child.is_alive():
                return "error", (f"--ray: Ray stopped while it was to {doing} (exit {self.child.exitcode}): see "
                                 f"{self.log}")
            if deadline is not None and time.monotonic() > deadline:
                return "error", (f"--ray: Ray did not {doing} within {timeout_s:.0f} s: see {self.log}, or drop "
                                 "--ray to search on a local process pool")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return "error", f"--ray: Ray stopped while it was to {doing}: see {self.log}"

    def _kill(self) -> None:
        """The driver and every process of its session killed at once; a Ray cluster it joined is left running."""
        kill_session(self.child)
        self.conn.close()


def _driver(conn, address: str | None, simulate_args, log: str) -> None:
    """The child: its own session and log (rayproc), Ray started or joined, then each map's points sent back as
    they come, in order."""
    enter_child(log, f"staronnx advise: Ray driver, pid {os.getpid()}, address {address or 'a local instance'}")
    said = init_ray(address, "--ray-address", log)
    if said:
        conn.send(("error", said if address else f"--ray: {said}"))
        return
    import ray

    task = ray.remote(simulate_args)
    conn.send(("ready", None))
    while True:
        kind, args = conn.recv()
        if kind != "map":
            break
        refs = [task.remote(a) for a in args]
        for ref in refs:
            try:
                conn.send(("point", ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - a task's failure, said in one line
                conn.send(("error", f"--ray: a simulation failed on the cluster ({first_line(exc)}): see {log}"))
                return
    ray.shutdown()
