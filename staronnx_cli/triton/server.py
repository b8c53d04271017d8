"""A tritonserver process: found in the nvidia-pytriton wheel, started in its own process group on
127.0.0.1 ports, ready when HTTP /v2/health/ready says so, always stopped (SIGTERM to the group, SIGKILL
after a timeout; the kernel also sends SIGTERM if staronnx dies first).

What the wheel needs, measured on this machine (Triton 2.51 from nvidia-pytriton 0.7.0, Python backend
only): a backend directory holding libtriton_python.so, triton_python_backend_utils.py and the stub of
this Python version (the wheel keeps the stub elsewhere); LD_LIBRARY_PATH with this interpreter's lib
directory first (else the stub loads the system's libpython); PATH with the venv's bin first (the stub's
interpreter then finds the venv and its onnxruntime).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UserError, install_hint

INSTALL_HINT = install_hint("triton") + " (Linux x86_64, glibc 2.35 or newer; make test installs it)"


def wheel_dir() -> Path:
    """The tritonserver distribution inside the nvidia-pytriton wheel, or a UserError saying how to get it."""
    try:
        import pytriton  # noqa: F401 - only its location is needed
        import tritonclient.grpc  # noqa: F401
    except ImportError:
        raise UserError(f"--system triton needs Triton Inference Server and its client: {INSTALL_HINT}") from None
    root = Path(sys.modules["pytriton"].__file__ or ".").parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise UserError(f"the nvidia-pytriton wheel has no tritonserver binary at {root}/bin: {INSTALL_HINT}")
    return root


def backend_dir(dest: Path) -> Path:
    """dest/python/ with symlinks to the Python backend and the stub of this Python version."""
    root = wheel_dir()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise UserError(f"the Triton wheel has no Python backend stub for Python {version}: use Python 3.8-3.13")
    python = dest / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (root / "backends" / "python" / "libtriton_python.so",
                   root / "backends" / "python" / "triton_python_backend_utils.py", stub):
        link = python / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return dest


def server_env() -> dict:
    env = os.environ.copy()
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(wheel_dir().parent.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in [*libs, env.get("LD_LIBRARY_PATH", "")] if p)
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def choose_ports(base: int) -> tuple[int, int, int]:
    """grpc, http, metrics: base, base+1, base+2 (checked free), or three the kernel picks when base is 0."""
    if base:
        ports = (base, base + 1, base + 2)
        busy = [p for p in ports if not port_is_free(p)]
        if busy:
            raise UserError(f"port {busy[0]} on 127.0.0.1 is in use: stop what holds it or choose another "
                            f"--triton-port (Triton needs {base}-{base + 2})")
        return ports
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(3)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return socks[0].getsockname()[1], socks[1].getsockname()[1], socks[2].getsockname()[1]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when staronnx dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class TritonServer:
    def __init__(self, repository: Path, work: Path, port_base: int = 0):
        self.work = work
        self.grpc_port, self.http_port, self.metrics_port = choose_ports(port_base)
        self.log = work / f"tritonserver_{self.grpc_port}.log"
        self.stdio = self.log.with_suffix(".stdio")
        self.cmd = [str(wheel_dir() / "bin" / "tritonserver"), f"--model-repository={repository}",
                    f"--backend-directory={backend_dir(work / 'backends')}",
                    "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                    "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                    "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                    "--allow-gpu-metrics=false", "--disable-auto-complete-config", f"--log-file={self.log}",
                    "--log-verbose=0", "--exit-timeout-secs=5"]
        self.proc: subprocess.Popen | None = None
        self._shm_before: set[str] = set()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 60.0) -> float:
        """Start and wait until ready; returns seconds to ready. A failure stops the server and says why."""
        self._shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        with open(self.stdio, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=server_env(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        start = time.perf_counter()
        try:
            while time.perf_counter() - start < timeout_s:
                if self.proc.poll() is not None:
                    raise UserError(f"tritonserver exited with {self.proc.returncode}: {self._why()} (log: {self.log})")
                if b"error while loading shared libraries" in self.stdio.read_bytes():
                    raise UserError(f"Triton's Python stub cannot load its libraries (log: {self.stdio})")
                if self._ready():
                    return time.perf_counter() - start
                time.sleep(0.02)
            raise UserError(f"tritonserver was not ready after {timeout_s:.0f} s (log: {self.log})")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=1.0) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def _why(self) -> str:
        text = (self.log.read_text(errors="replace") if self.log.exists() else "") + self.stdio.read_text(
            errors="replace")
        for line in text.splitlines():
            if "already in use" in line:
                return "a port is already in use; choose another --triton-port"
        errors = [line for line in text.splitlines() if line.startswith("E") and "CudaDriverHelper" not in line]
        return errors[-1][:200] if errors else "see its log"

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the whole group (server and Python stubs), SIGKILL after `timeout_s`; shared memory
        regions the Python backend leaves behind are removed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # stubs that outlived the server
        if os.path.isdir("/dev/shm"):
            for name in set(os.listdir("/dev/shm")) - self._shm_before:
                if name.startswith("triton_python_backend_shm_region"):
                    try:
                        os.unlink(os.path.join("/dev/shm", name))
                    except OSError:
                        pass
        self.proc = None
