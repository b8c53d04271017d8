"""`--rate auto`: the grid fitted to each batch size's capacity, and rho_max found by bisection (exact, virtual
clock)."""

import json

import pandas as pd
import pytest

from staronnx_cli.sweep.autogrid import PRECISION, grid_capacity, next_probe, nice, union_grid

PLATFORM = ('name = "one worker"\n[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n'  # S(1) = 10 ms, S(2) = 16 ms
            + "".join(f'[[times]]\npart = 0\nkind = "cpu:1"\nbatch = {n}\nmean_ms = {ms}\nstd_ms = 0.5\n'
                      for n, ms in ((1, 10.0), (2, 16.0))))


def test_capacity_grid_and_rounding():
    assert grid_capacity(2, [0.016]) == pytest.approx(125.0)
    assert grid_capacity(1, [0.010, 0.010]) == pytest.approx(200.0) and grid_capacity(1, []) is None
    # a worker whose S(N) is unknown: the grid starts from the others' (a lower bound), while the judge, which
    # stops points beyond capacity, knows none (an understated capacity would stop points the machine serves)
    from staronnx_cli.sweep.point import _capacity
    assert grid_capacity(1, [0.010, float("nan")]) == pytest.approx(100.0) and grid_capacity(1, [0.0]) is None
    assert _capacity(1, [0.010], 2) is None and _capacity(1, [0.010, 0.010], 2) == pytest.approx(200.0)
    assert nice(412.73) == 413 and nice(93.75) == 93.8 and nice(0.012345) == 0.0123
    assert union_grid({1: 100.0, 2: 125.0}) == [25, 31.2, 50, 62.5, 70, 85, 100, 125, 138]  # 110: within 10 % of 100
    assert union_grid({1: 64.6, 2: 64.9, 4: 63.6}) == [15.9, 31.8, 44.5, 54.1, 63.6, 70.0]  # not three of each


def test_the_next_probe_bisects_until_rho_max_is_known_within_precision():
    assert next_probe([(90.0, False), (105.0, True)], 100.0) == 97.5  # halfway
    assert next_probe([(99.0, False), (101.0, True)], 100.0) is None  # within 3 %: known
    assert next_probe([(60.0, False), (90.0, False)], 100.0) == 112.5  # nothing congested yet: go past it
    assert next_probe([(200.0, False)], 100.0) is None  # twice the capacity and still fine: stop there
    assert next_probe([(20.0, True), (40.0, True)], 100.0) == 10.0  # congested everywhere: look lower
    assert next_probe([(0.5, True)], 100.0) is None  # ... down to 1 % of the capacity
    assert next_probe([(50.0, False)], None) is None  # no capacity measured: nothing to aim at
    assert next_probe([(90.0, False), (80.0, True), (105.0, True)], 100.0) == 97.5  # congested below a fine one: noise


def test_rate_auto_finds_each_batch_sizes_saturation_within_three_percent(cli, tiny_cnn_path, tmp_path):
    (tmp_path / "p.toml").write_text(PLATFORM)
    run = tmp_path / "run"
    args = ["sweep", tiny_cnn_path, "--engine", "sim", "--platform", tmp_path / "p.toml", "--batch", "1,2",
            "--batches", "50", "--warmup", "5", "-o", run]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "--rate auto: capacity (a first measurement, for the grid) N=1 100 q/s, N=2 125 q/s" in result.stdout
    points = pd.read_csv(run / "points.csv")
    for n, exact in ((1, 100.0), (2, 125.0)):  # one worker, fixed arrivals: rho_max(N) = N / S(N) exactly
        mine = points[points.batch_size == n]
        fine = mine[~mine.congested & (mine.batches > 0)]
        assert abs(fine.rate_qps.max() / exact - 1) <= PRECISION, fine.rate_qps.max()
        assert len(fine) >= 4  # a curve, not a point at the edge of the axes
    meta = json.loads((run / "run.json").read_text())
    assert meta["auto_capacity_qps"] == {"1": 100.0, "2": 125.0} and meta["auto_rates"][0] == 25
    again = cli(*args, "--resume")  # the same grid, nothing left to measure
    assert again.exit_code == 0 and len(pd.read_csv(run / "points.csv")) == len(points)


def test_rate_auto_with_rates_of_yours_measures_them_for_every_batch_size(cli, tiny_cnn_path, tmp_path):
    """--rate auto picked its own grid, so 137 q/s (the rate a user runs) was answered only by chance; auto,137 adds
    it for every N, says so, and keeps it on --resume (with any rate added then)."""
    from pathlib import Path

    from staronnx_cli.sweep.grid import parse_rate_option

    assert parse_rate_option("auto") == (True, ())
    assert parse_rate_option("auto,137,40") == (True, (40.0, 137.0))
    assert parse_rate_option("10:30:10") == (False, (10.0, 20.0, 30.0))
    platform = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "1,4", "--rate",
                 "auto,137", "--batches", "20", "-o", run)
    assert result.exit_code == 0, result.stderr
    assert "(yours: 137)" in result.stdout
    points = pd.read_csv(run / "points.csv")
    assert set(points[points.rate_qps == 137.0].batch_size) == {1, 4}
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "1,4", "--rate",
                 "auto,95", "--batches", "20", "-o", run, "--resume")
    assert result.exit_code == 0, result.stderr
    points = pd.read_csv(run / "points.csv")
    assert set(points[points.rate_qps == 95.0].batch_size) == {1, 4} and (points.rate_qps == 137.0).sum() == 2
    assert 95.0 in json.loads((run / "run.json").read_text())["auto_rates"]
    bad = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--rate", "auto,0", "-o",
              tmp_path / "bad")
    assert bad.exit_code == 2 and "--rate auto,0: every rate must be a positive" in bad.stderr
