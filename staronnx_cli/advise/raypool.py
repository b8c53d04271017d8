"""`advise --ray`: the search's simulations on a Ray cluster, behind the same `map` as the process pool, so the
same candidates and seed give the same rows whatever runs them. Ray is optional (the [ray] extra).

Each task simulates one candidate and sends back its points (its run directory is written where the task
ran: on a cluster without a shared file system, only candidates.csv and advice.md hold the search)."""

from __future__ import annotations

from ..errors import UserError, first_line


class RayPool:
    def __init__(self, address: str | None, simulate_args):
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install "
                            "ray), or drop --ray to search on a local process pool") from None
        if address and address != "auto":
            _reachable(address)
        try:
            ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False, configure_logging=False)
        except BaseException as exc:  # Ray raises ConnectionError, RuntimeError, even SystemExit for a bad address
            raise UserError(f"--ray-address {address}: no Ray cluster answers there ({first_line(exc)}): start one "
                            "with 'ray start --head', or drop --ray-address to start one on this machine") from None
        self.ray = ray
        self.task = ray.remote(simulate_args)

    def map(self, fn, args) -> list:
        """Like Executor.map (fn is the task given at construction): results in the order of `args`."""
        return self.ray.get([self.task.remote(a) for a in args])

    def shutdown(self) -> None:
        self.ray.shutdown()


def _reachable(address: str, timeout_s: float = 3.0) -> None:
    """A TCP connection to the cluster's head first: Ray itself retries an unreachable address for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        host, port = port, "6379"  # Ray's default GCS port
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({exc}): start one with 'ray start "
                        "--head', or drop --ray-address to start one on this machine") from None
