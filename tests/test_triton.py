"""A real Triton Inference Server (the [triton] extra) started on a tiny model, always stopped."""

import json
import socket
import subprocess

import pandas as pd
import pytest
from conftest import assert_one_line_error

pytest.importorskip("pytriton", reason="the [triton] extra is not installed")
pytest.importorskip("tritonclient.grpc", reason="the [triton] extra is not installed")


def triton_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "bin/tritonserver" in line or "triton_python_backend_stub" in line]


@pytest.mark.realtime
def test_triton_serves_the_same_load_and_writes_the_same_files(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--system", "triton", "--workers", "cpu:1x1", "--batch", "1,2",
                 "--rate", "100", "--batches", "8", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stderr
    points, batches = pd.read_csv(run / "points.csv"), pd.read_csv(run / "batches.csv")
    assert (points.system == "triton").all() and (points.batches == 8).all() and not points.congested.any()
    assert points.errors.isna().all()
    measured = batches[batches.measured]
    formation_ms = 1000 * (measured.batch_size - 1) / measured.rate_qps
    assert (measured.first_query_latency_ms >= formation_ms - 1e-6).all()
    meta = json.loads((run / "run.json").read_text())
    assert "Python backend" in meta["triton"] and meta["policy"] == "triton-dynamic-batcher"
    config = (run / "triton" / "repository_b2" / "staronnx_model" / "config.pbtxt").read_text()
    assert "max_batch_size: 2" in config and "preferred_batch_size: [ 2 ]" in config
    assert list((run / "triton").glob("tritonserver_*.log"))  # the server's log is kept with the run
    assert triton_processes() == []  # stopped, stubs included


def test_a_busy_port_is_a_clear_error_and_no_server_is_left(cli, tiny_cnn_path, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = cli("sweep", tiny_cnn_path, "--system", "triton", "--workers", "cpu:1x1", "--triton-port", port,
                     "--batch", "1", "--rate", "50", "--batches", "3", "-o", tmp_path / "r")
    assert_one_line_error(result, f"port {port}", "in use")
    assert triton_processes() == []


def test_triton_is_stopped_when_the_sweep_fails(cli, tiny_cnn_path, tmp_path, monkeypatch):
    from staronnx_cli.systems import triton

    def broken(self, *args, **kwargs):
        raise RuntimeError("client failed")

    monkeypatch.setattr(triton.TritonClient, "service_time", broken)
    result = cli("sweep", tiny_cnn_path, "--system", "triton", "--workers", "cpu:1x1", "--batch", "1", "--rate", "50",
                 "--batches", "3", "-o", tmp_path / "r")
    assert result.exit_code == 1 and "client failed" in result.stderr
    assert triton_processes() == []


def test_triton_refuses_what_it_cannot_do(cli, tiny_cnn_path, tmp_path, monkeypatch):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "triton", "--workers", "cpu:2x1", "-o",
                              tmp_path / "r"), "one CPU worker")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "triton", "--arrival", "poisson", "-o",
                              tmp_path / "r"), "fixed-rate")
    import sys

    monkeypatch.setitem(sys.modules, "pytriton", None)  # as if the extra were not installed
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "triton", "--workers", "cpu:1x1", "-o",
                              tmp_path / "r"), "staronnx[triton]")


@pytest.mark.realtime
def test_ctrl_c_stops_triton_and_keeps_finished_points(tiny_cnn_path, tmp_path):
    import os
    import signal
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "staronnx_cli", "sweep", str(tiny_cnn_path), "--system", "triton", "--workers",
            "cpu:1x1", "--batch", "1", "--rate", "20,21,22,23,24,25", "--batches", "20", "--warmup", "0", "-o",
            str(run)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not ((run / "points.csv").exists() and
                                               len(pd.read_csv(run / "points.csv")) >= 1):
        time.sleep(0.05)
    assert triton_processes(), "the server should be running mid-sweep"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, err
    assert 1 <= len(pd.read_csv(run / "points.csv")) < 6
    assert triton_processes() == []
