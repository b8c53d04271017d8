"""`staronnx export`: a run's held points as perf_analyzer's -f CSV, one file per batch size (a mix: per model)."""

import shutil
from pathlib import Path

import pandas as pd
from conftest import assert_one_line_error

from staronnx_cli.results.export import HEADER, perf_analyzer_tables

RUNS = Path(__file__).parent / "data" / "runs"


def test_each_batch_size_is_one_perf_analyzer_file_of_its_held_points_in_microseconds(cli, tmp_path):
    run = tmp_path / "cnn"
    shutil.copytree(RUNS / "two_workers", run)
    points = pd.read_csv(run / "points.csv")
    points["fill_ms"], points["wait_ms"], points["run_ms"] = 0.25, 1.5, 2.125
    points["p90_latency_ms"], points["p95_latency_ms"] = 3.0, 4.0
    points.to_csv(run / "points.csv", index=False)
    done = cli("export", run, "-o", tmp_path / "out")
    assert done.exit_code == 0, done.output
    held = points[~points.congested.astype(str).str.lower().eq("true")]
    for n, group in held.groupby("batch_size"):
        table = pd.read_csv(tmp_path / "out" / f"cnn.N{n}.csv")
        assert list(table.columns) == HEADER
        assert table["Request Rate"].tolist() == sorted(group.rate_qps.tolist())  # by infer/sec, as perf_analyzer
        assert (table["Server Queue"] == 1750).all() and (table["Server Compute Infer"] == 2125).all()
        assert table["p50 latency"].tolist() == [round(1000 * v) for v in group.sort_values(
            "achieved_qps").p50_latency_ms]
        assert (table["p90 latency"] == 3000).all() and (table["Client Send"] == 0).all()
    assert len(list((tmp_path / "out").iterdir())) == held.batch_size.nunique()
    assert_one_line_error(cli("export", run, "-o", tmp_path / "out"), "exists: add --force")
    assert cli("export", run, "-o", tmp_path / "out", "--force").exit_code == 0
    assert_one_line_error(cli("export", run, "-o", run), "is a run or a plan directory")
    assert_one_line_error(cli("export", run, "--format", "json", "-o", tmp_path / "x"), "--format json")


def test_a_mix_is_one_file_per_model_and_batch_size_and_unknown_columns_stay_empty():
    points = pd.DataFrame({"batch_size": [1, 1, 2, 1], "rate_qps": [10, 20, 10, 10], "achieved_qps": [10, 20, 10, 11],
                           "congested": [False, True, False, False], "errors": ["", "", "", ""],
                           "model": ["a", "a", "b", "a"], "mix": ["a=1 b=2", "a=1 b=2", "a=1 b=2", "a=1 b=4"],
                           "p50_latency_ms": [1.0, 2.0, 3.0, 4.0], "p99_latency_ms": [1.5, 2.5, 3.5, 4.5]})
    tables = perf_analyzer_tables(points)
    # the congested point is not a rate perf_analyzer would report; a's rows of two combinations are two files
    assert sorted(tables) == ["a.N1.a1_b2", "a.N1.a1_b4", "b.N2.a1_b2"]
    assert tables["a.N1.a1_b2"] == [["10", "10.0", 0, 0, "", 0, "", 0, 0, 1000, "", "", 1500]]
