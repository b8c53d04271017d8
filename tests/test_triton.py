"""A real Triton Inference Server (the [triton] extra) started on a tiny model, always stopped."""

import json
import socket
import subprocess
from pathlib import Path

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
                              tmp_path / "r"), "[triton]' (Linux x86_64")


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


def test_a_mix_repository_holds_each_model_with_its_own_batcher(tiny_cnn_path, tmp_path):
    from staronnx_cli.triton.repository import ServedModel, write_repository
    from staronnx_cli.zoo.cache import build_cached

    transformer = build_cached("tiny_transformer")[0]
    root = write_repository(tmp_path / "repo", [ServedModel("cnn", tiny_cnn_path, 2),
                                                ServedModel("transformer", transformer, 1)], 1000, 2, [0, 1])
    assert sorted(p.name for p in root.iterdir()) == ["cnn", "transformer"]
    for name, n in (("cnn", 2), ("transformer", 1)):
        config = (root / name / "config.pbtxt").read_text()
        assert f'name: "{name}"' in config and f"max_batch_size: {n}\n" in config
        assert f"preferred_batch_size: [ {n} ]" in config and "max_queue_delay_microseconds: 1000" in config
        assert "count: 1 kind: KIND_CPU" in config and (root / name / "1" / "model.py").is_file()


def test_a_mix_sends_every_models_queries_in_arrival_order():
    # a: N=1 at 100 q/s; b: N=4 at 100 q/s, so b's first group spans a's first four arrivals (0, 10, 20, 30 ms) and
    # is released after a's first three: sent group after group, b's queries would leave 30 ms late
    from staronnx_cli.mix.schedule import MixPoint, mix_schedule
    from staronnx_cli.mix.spec import parse_mix
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.scheduler import Limits
    from staronnx_cli.systems.triton import TritonRunner

    mix = parse_mix({"model": [{"name": "a", "model": "tiny_cnn", "rate": 100, "batch": 1},
                               {"name": "b", "model": "tiny_transformer", "rate": 100, "batch": 4}]}, Path("mix.toml"))
    schedule = mix_schedule(mix, MixPoint(1.0, (1, 4), (100.0, 100.0), warmup=0, batches=2)).schedule

    class AnswersAtOnce:
        def __init__(self):
            self.sent: list[int] = []

        def send(self, on_done, model: int = 0) -> None:
            self.sent.append(model)
            on_done(result=None)

    client = AnswersAtOnce()
    records, stop = TritonRunner(RealLoop(lead_s=0.0), client, parts=[0, 1]).run(schedule, Limits(50, 10.0))
    assert stop == "" and client.sent == [0, 1] * 8  # ties at each arrival: the batch released first (a's)
    assert all(r.end_s >= r.actual_release_s >= r.scheduled_release_s for r in records)
    assert [r.tasks[0].part for r in records] == [r.model for r in records]  # each model's own part


def test_triton_gets_each_query_at_its_own_arrival_under_random_arrivals():
    """Queries of a group were due evenly between its first and last arrival: exact at a fixed rate, another
    stream than the one scheduled under Poisson arrivals (Triton's own batcher forms batches from it)."""
    import numpy as np

    from staronnx_cli.load.schedule import arrivals, batch_schedule
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.scheduler import Limits, records_of
    from staronnx_cli.systems.triton import TritonRunner

    times = arrivals("poisson", 2000.0, 12, seed=3)
    schedule = batch_schedule(times, 4)
    records = records_of(schedule)
    due = [d for d, _, _ in TritonRunner(RealLoop(), None, parts=[0])._queries(schedule, records, Limits(50, 10.0))]
    assert due == times.tolist()  # each query at its own arrival
    evenly = [r.first_arrival_s + q * (r.scheduled_release_s - r.first_arrival_s) / 3 for r in records
              for q in range(4)]
    assert np.max(np.abs(np.array(evenly) - times)) > 1e-4  # Poisson gaps: evenly spaced would be another stream


@pytest.mark.realtime
def test_triton_serves_a_mix_with_one_row_per_model(cli, tmp_path):
    mix = Path(__file__).resolve().parent.parent / "experiments" / "mixes" / "tiny.toml"
    run = tmp_path / "run"
    result = cli("sweep", "--mix", mix, "--system", "triton", "--workers", "cpu:1x2", "--scale", "1", "--batches", "4",
                 "--warmup", "1", "-o", run)
    assert result.exit_code in (0, 3), result.stderr  # 3: it ran, but not every target was met at scale 1
    points = pd.read_csv(run / "points.csv")
    assert list(points.model) == ["cnn", "transformer"] and (points.system == "triton").all()
    assert points.errors.isna().all()
    assert sorted(p.name for p in (run / "triton" / "repository_b2_1").iterdir()) == ["cnn", "transformer"]
    assert triton_processes() == []


def test_triton_refuses_a_mix_it_cannot_serve(cli, tiny_cnn_path, tmp_path):
    from staronnx_cli.errors import UserError
    from staronnx_cli.systems.target import Member, Target
    from staronnx_cli.systems.triton import TritonConfig, TritonEngine

    whole = Target([tiny_cnn_path], None, "", "")
    plan = Target([tiny_cnn_path, tiny_cnn_path], None, "", "")
    target = Target(whole.part_files + plan.part_files, None, "", "",
                    members=[Member("whole", whole, 0), Member("halves", plan, 1)])
    with pytest.raises(UserError, match="mix model 'halves' is a plan of 2 parts"):
        TritonEngine(TritonConfig("cpu:1x1", tmp_path), target.part_files, target)
    mix = tmp_path / "poisson.toml"
    mix.write_text('[[model]]\nmodel = "tiny_cnn"\nrate = 50\n\n[[model]]\nmodel = "tiny_transformer"\nrate = 50\n'
                   'arrival = "poisson"\n')
    assert_one_line_error(cli("sweep", "--mix", mix, "--system", "triton", "--workers", "cpu:1x1", "-o",
                              tmp_path / "r"), "fixed-rate", 'arrival = "fixed"')


def test_a_client_whose_channel_hangs_on_close_still_stops_the_server(monkeypatch):
    """Ctrl-C inside a gRPC call can leave the channel's close() waiting forever (seen in make faults): the
    server is stopped all the same, and close returns."""
    import threading

    from staronnx_cli.systems import triton

    never, stopped = threading.Event(), []

    class Hung:
        def close(self):
            never.wait()

    class Server:
        def stop(self):
            stopped.append(True)

    client = object.__new__(triton.TritonClient)
    client.client, client.server = Hung(), Server()
    monkeypatch.setattr(triton, "CLOSE_WAIT_S", 0.05)
    closing = threading.Thread(target=client.close, daemon=True)
    closing.start()
    closing.join(30)
    assert not closing.is_alive() and stopped == [True]
    never.set()

    class Broken:
        def close(self):
            raise RuntimeError("channel already gone")

    client.client, escaped = Broken(), []
    monkeypatch.setattr(threading, "excepthook", escaped.append)  # what would print a thread's traceback
    client.close()  # the channel's error stays in its thread: no traceback, the server stopped
    assert stopped == [True, True] and escaped == []
