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
import signal
import time
from pathlib import Path

from ..errors import UserError, first_line

START_S = 120.0  # a local Ray instance starts in seconds; beyond this, something is wrong
JOIN_S = 30.0  # joining a cluster whose GCS answered
PROBE_S = 3.0  # an address's GCS must answer within this
STOP_S = 10.0  # a normal end: the child shuts Ray down within this, else it is killed


class RayPool:
    def __init__(self, address: str | None, simulate_args, log: Path):
        try:
            import importlib.util

            found = importlib.util.find_spec("ray") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise UserError("--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install "
                            "ray), or drop --ray to search on a local process pool")
        if address and address != "auto":
            _reachable(address)
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
        """The driver and every process of its session (Ray's GCS, raylet and workers, each in a process group
        of its own) killed at once; a Ray cluster it joined is left running."""
        driver = self.child.pid
        for pid in [driver, *_session_members(driver)] if driver is not None and self.child.is_alive() else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.child.join(2.0)
        self.conn.close()


def _session_members(session: int) -> list[int]:
    """The processes whose session id is `session` (Linux /proc; none elsewhere)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        if len(fields) > 3 and fields[3] == str(session) and int(entry) != session:
            found.append(int(entry))
    return found


def _driver(conn, address: str | None, simulate_args, log: str) -> None:
    """The child: its own session (a terminal's Ctrl-C is for staronnx, which kills it), its output in the log,
    Ray started or joined, then each map's points sent back as they come, in order."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"staronnx advise: Ray driver, pid {os.getpid()}, address {address or 'a local instance'}", flush=True)
    try:
        if address and not address.startswith("ray://") and _probe_gcs(address) == "token":
            os.environ.setdefault("RAY_AUTH_MODE", "token")  # the driver then sends the token Ray keeps for it
        if not address:  # Ray binds its servers on every interface: only holders of this user's token get in
            os.environ["RAY_AUTH_MODE"] = "token"
        import ray

        ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
    except BaseException as exc:  # Ray raises ConnectionError, RuntimeError, even SystemExit for a bad address
        conn.send(("error", f"--ray-address {address}: no Ray cluster answers there ({first_line(exc)}): start one "
                            "with 'ray start --head', or drop --ray-address to start one on this machine"
                   if address else f"--ray: Ray could not start on this machine ({first_line(exc)}): see {log}"))
        return
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


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        host, port = port, "6379"  # Ray's default GCS port
    try:
        return host, int(port)
    except ValueError:
        raise UserError(f"--ray-address {address}: give HOST:PORT, e.g. 127.0.0.1:6379") from None


def _reachable(address: str, timeout_s: float = PROBE_S) -> None:
    """A TCP connection to the cluster's head first: Ray itself retries an unreachable address for minutes."""
    import socket

    host, port = _split(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({exc}): start one with 'ray start "
                        "--head', or drop --ray-address to start one on this machine") from None


def _probe_gcs(address: str, timeout_s: float = PROBE_S) -> str:
    """Ray's GCS answers there (not merely some server on that port): its cluster id, asked over gRPC; "token"
    where it asks for the cluster's token first (Ray's token authentication), else "open"."""
    import grpc  # Ray's own dependency; `ray` itself is imported after, once its settings are known

    host, port = _split(address)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        ask = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId", request_serializer=bytes,
                                  response_deserializer=bytes)
        try:
            ask(b"", timeout=timeout_s)  # an empty GetClusterIdRequest
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:  # a GCS asking for the cluster's token is Ray's
                raise RuntimeError(f"not a Ray cluster: {exc.code().name}") from None
            return "token"
    return "open"
