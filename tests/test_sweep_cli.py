"""A short real sweep of a tiny model: structure and invariants of the result files (never a timing)."""

import json

import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.ortenv import cuda_status
from staronnx_cli.sweep.schema import BATCH_COLUMNS, POINT_COLUMNS


@pytest.mark.realtime
def test_sweep_writes_points_and_batches_and_resumes(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    args = ["sweep", tiny_cnn_path, "--workers", "cpu:2x1", "--policy", "eager", "--batch", "1,3",
            "--rate", "50,100", "--batches", "6", "--warmup", "1", "-o", run]
    result = cli(*args)
    assert result.exit_code == 0, result.stdout + result.stderr
    points, batches = pd.read_csv(run / "points.csv"), pd.read_csv(run / "batches.csv")
    assert list(points.columns) == POINT_COLUMNS and list(batches.columns) == BATCH_COLUMNS
    assert sorted(zip(points.batch_size, points.rate_qps)) == [(1, 50.0), (1, 100.0), (3, 50.0), (3, 100.0)]
    meta = json.loads((run / "run.json").read_text())
    assert meta["workers"] == "cpu:2x1" and meta["engine"] == "real" and len(meta["model_sha256"]) == 64
    measured = batches[batches.measured]
    # no batch finishes before its last query arrived, so no latency below the formation time (N-1)/rho
    formation_ms = 1000 * (measured.batch_size - 1) / measured.rate_qps
    assert (measured.first_query_latency_ms >= formation_ms - 1e-6).all()
    assert (measured.actual_release_s >= measured.scheduled_release_s - 1e-6).all()
    assert measured.placement.str.match(r"^0:cpu[01]$").all()
    for (n, rate), group in measured.groupby(["batch_size", "rate_qps"]):
        row = points[(points.batch_size == n) & (points.rate_qps == rate)].iloc[0]
        if not row.congested:
            assert row.batches == len(group)
            assert row.mean_max_latency_ms == pytest.approx(group.first_query_latency_ms.mean(), rel=1e-3)
    # an existing run is refused, then resumed without redoing a point
    assert_one_line_error(cli(*args), "--resume")
    assert cli(*args, "--resume").exit_code == 0
    assert len(pd.read_csv(run / "points.csv")) == 4


@pytest.mark.parametrize("args, fragments", [
    (["--rate", "0"], ["--rate"]),
    (["--batch", "0"], ["--batch"]),
    (["--policy", "fastest"], ["--policy 'fastest'"]),
    (["--workers", "cpu:64x4"], ["cores"]),
    pytest.param(["--workers", "cuda:0"], ["CUDA"],
                 marks=pytest.mark.skipif(cuda_status().usable, reason="a GPU is here")),
])
def test_sweep_bad_input(cli, tiny_cnn_path, tmp_path, args, fragments):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batches", "3", *args, "-o", tmp_path / "r"), *fragments)


def test_sweep_of_a_plan_with_a_missing_part(cli, tmp_path, tiny_cnn_path):
    plan = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--offload", "0.2", "--no-verify", "-o", plan).exit_code == 0
    (plan / "part_1.onnx").unlink()
    assert_one_line_error(cli("sweep", plan, "-o", tmp_path / "r"), "part_1.onnx")
