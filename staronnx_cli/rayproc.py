"""A Ray driver kept in a child process (advise --ray, fleet): the child runs in a session of its own with its output
in a log file, so Ray's warnings, C++ logs and stack dumps never reach the user's screen, and Ctrl-C or SIGTERM
stay staronnx's (the child and every process of its session are killed at once; a cluster it joined keeps
running). An address is checked to be a Ray cluster (its GCS answers) within seconds, where Ray itself retries
for minutes. Ray is optional (the [ray] extra)."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

from .errors import UserError, first_line, install_hint

PROBE_S = 3.0  # an address's GCS must answer within this


def need_ray(what: str, instead: str) -> None:
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"{what} needs Ray, which is not installed: {install_hint('ray')}, "
                        f"or {instead}")


def enter_child(log: str, banner: str) -> None:
    """In the child: a session of its own (a terminal's Ctrl-C is for staronnx), its output in `log`."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(banner, flush=True)


def init_ray(address: str | None, option: str, log: str) -> str:
    """ray.init in the child: '' when it is connected, else the one line to say (a bad address, or Ray that
    could not start here)."""
    try:
        if address and not address.startswith("ray://") and probe_gcs(address) == "token":
            os.environ.setdefault("RAY_AUTH_MODE", "token")  # the driver then sends the token Ray keeps for it
        if not address:  # Ray binds its servers on every interface: only holders of this user's token get in
            os.environ["RAY_AUTH_MODE"] = "token"
        import ray

        ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
        return ""
    except ImportError as exc:  # a package of the [ray] extra missing: no cluster could answer, whatever is there
        return (f"{option} {address}: Python's {exc.name or first_line(exc)} module is not installed: pip install "
                "'staronnx[ray]' (Ray and grpcio)")
    except BaseException as exc:  # Ray raises ConnectionError, RuntimeError, even SystemExit for a bad address
        if address:
            return (f"{option} {address}: no Ray cluster answers there ({first_line(exc)}): start one with 'ray "
                    f"start --head', or drop {option} to start one on this machine")
        return f"Ray could not start on this machine ({first_line(exc)}): see {log}"


def kill_session(child) -> None:
    """The child and every process of its session (Ray's GCS, raylet and workers) killed at once."""
    driver = child.pid
    for pid in [driver, *session_members(driver)] if driver is not None and child.is_alive() else []:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    child.join(2.0)


def session_members(session: int) -> list[int]:
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


def split_address(address: str, option: str = "--ray-address") -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        host, port = port, "6379"  # Ray's default GCS port
    try:
        return host, int(port)
    except ValueError:
        raise UserError(f"{option} {address}: give HOST:PORT, e.g. 127.0.0.1:6379") from None


def reachable(address: str, option: str = "--ray-address", timeout_s: float = PROBE_S) -> None:
    """A TCP connection to the cluster's head first: Ray itself retries an unreachable address for minutes."""
    import socket

    host, port = split_address(address, option)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"{option} {address}: no Ray cluster answers there ({exc}): start one with 'ray start "
                        f"--head', or drop {option} to start one on this machine") from None


def probe_gcs(address: str, timeout_s: float = PROBE_S) -> str:
    """Ray's GCS answers there (not merely some server on that port): its cluster id, asked over gRPC; "token"
    where it asks for the cluster's token first (Ray's token authentication), else "open"."""
    import grpc  # the [ray] extra's (Ray itself does not require it); `ray` is imported after, once its settings are
    # known

    host, port = split_address(address)
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
