"""The simulated engine: exact latencies and saturation on hand-written platforms, determinism, bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.runtime.platform import interpolate, parse_platform, read_platform


def write(path, text):
    path.write_text(text)
    return path


def platform_text(workers='[[workers]]\nkind = "cpu"\ncount = 1\ncores = 1\n', times=None, extra=""):
    rows = times if times is not None else [(0, "cpu:1", 1, 10.0), (0, "cpu:1", 2, 16.0)]
    body = "".join(f'[[times]]\npart = {p}\nkind = "{k}"\nbatch = {b}\nmean_ms = {m}\nstd_ms = 0.5\n\n'
                   for p, k, b, m in rows)
    return f'name = "test"\n{workers}\n{extra}\n{body}'


def sweep(cli, target, platform, out, *args):
    result = cli("sweep", target, "--engine", "sim", "--platform", platform, "--batches", "50", "--warmup", "5",
                 "-o", out, *args)
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(out / "points.csv")


def test_one_worker_latency_is_formation_plus_service_and_saturates_where_arithmetic_says(cli, tiny_cnn_path,
                                                                                         tmp_path):
    p = write(tmp_path / "p.toml", platform_text())  # S(1) = 10 ms, S(2) = 16 ms: rho_max 100 and 125 q/s
    points = sweep(cli, tiny_cnn_path, p, tmp_path / "run", "--batch", "1,2", "--rate", "50,90,120,140")
    ok = points[~points.congested]
    assert sorted(zip(ok.batch_size, ok.rate_qps)) == [(1, 50), (1, 90), (2, 50), (2, 90), (2, 120)]
    for _, row in ok.iterrows():
        expected = 1000 * (row.batch_size - 1) / row.rate_qps + (10.0 if row.batch_size == 1 else 16.0)
        assert row.mean_max_latency_ms == pytest.approx(expected, abs=1e-3)
        assert row.std_max_latency_ms == pytest.approx(0.0, abs=1e-3) and row.latency_over_ideal == pytest.approx(1)
        assert row.achieved_qps == pytest.approx(row.rate_qps, rel=1e-4)  # keeping up: it serves what is offered
    overloaded = points[(points.batch_size == 1) & (points.rate_qps == 120)]
    assert overloaded.congested.all() and overloaded.achieved_qps.tolist() == pytest.approx([100.0], rel=1e-4)
    for command in (("trace", "-o", tmp_path / "t.json"), ("plot", "--kind", "timeline", "-o", tmp_path / "t.png")):
        assert_one_line_error(cli(command[0], tmp_path / "run", "--batch-size", 1, "--rate", 140, *command[1:]),
                              "ran no point N=1 at 140 q/s (not run: batch 1 was already congested at 120 q/s)")
    assert not (tmp_path / "t.json").exists()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["engine"] == "sim" and meta["platform_name"] == "test" and "start_time" not in meta


def test_two_workers_double_saturation_and_a_third_batch_size_is_interpolated(cli, tiny_cnn_path, tmp_path):
    p = write(tmp_path / "p.toml", platform_text('[[workers]]\nkind = "cpu"\ncount = 2\ncores = 1\n'))
    points = sweep(cli, tiny_cnn_path, p, tmp_path / "run", "--batch", "1,4", "--rate", "150,190,230")
    n1 = points[points.batch_size == 1].set_index("rate_qps")
    assert not n1.loc[190].congested and n1.loc[230].congested  # 2 workers / 10 ms = 200 q/s
    n4 = points[points.batch_size == 4].set_index("rate_qps")  # S(4) = 28 ms along 10 -> 16 ms: 286 q/s
    assert n4.loc[150].mean_max_latency_ms == pytest.approx(1000 * 3 / 150 + 28.0, abs=1e-3)


def test_a_gpu_worker_pays_transfers_of_inputs_and_results(cli, tiny_cnn_path, tmp_path):
    p = write(tmp_path / "p.toml", platform_text('[[workers]]\nkind = "cuda"\ncount = 1\n',
                                                 [(0, "cuda", 1, 1.0)],
                                                 "[transfer]\nbandwidth_GBps = 1.0\nlatency_us = 100.0\n"
                                                 "[overhead]\ntask_us = 50.0\n"))
    points = sweep(cli, tiny_cnn_path, p, tmp_path / "run", "--batch", "1", "--rate", "100")
    # 50 us overhead + (100 us + 12288 B at 1 GB/s) in + 1 ms + (100 us + 40 B) back to host memory
    expected = 0.050 + 0.100 + 0.012288 + 1.0 + 0.100 + 0.00004
    assert points.mean_max_latency_ms.iloc[0] == pytest.approx(expected, abs=1e-4)  # written to 0.1 us


def test_a_sawtooth_longer_than_the_window_is_run_on_not_called_congested(cli, tiny_cnn_path, tmp_path):
    """A GPU just slower than the stream (1 ms and its overheads per batch, a batch every 1 ms) and two CPU workers
    at 2 ms: dmda fills the GPU's queue for ~27 batches, then gives one to a CPU, and again. The later half of
    K = 20 batches rises; the whole window, with a drop in it, does not: not congested at half the capacity
    (judging 6 called it congested)."""
    p = write(tmp_path / "p.toml", platform_text('[[workers]]\nkind = "cuda"\ncount = 1\n[[workers]]\nkind = "cpu"\n'
                                                 'count = 2\ncores = 1\n', [(0, "cuda", 1, 1.0), (0, "cpu:1", 1, 2.0)],
                                                 "[overhead]\ntask_us = 20.0\n"))
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", p, "--batch", "1", "--rate", "1000",
                 "--batches", "20", "--warmup", "5", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    point = pd.read_csv(tmp_path / "run" / "points.csv").iloc[0]
    assert not point.congested and point.reason != point.reason  # NaN: no caveat either
    assert point.capacity_qps > 1900


def test_same_inputs_and_seed_give_the_same_bytes(cli, tiny_cnn_path, tmp_path):
    p = write(tmp_path / "p.toml", platform_text('[[workers]]\nkind = "cpu"\ncount = 2\ncores = 1\n'))
    args = ["--batch", "1,2", "--rate", "60,150", "--sim-noise", "--seed", "4"]
    sweep(cli, tiny_cnn_path, p, tmp_path / "a", *args)
    sweep(cli, tiny_cnn_path, p, tmp_path / "b", *args)
    sweep(cli, tiny_cnn_path, p, tmp_path / "c", *args[:-1], "5")
    for name in ("points.csv", "batches.csv", "run.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "batches.csv").read_bytes() != (tmp_path / "c" / "batches.csv").read_bytes()
    noisy = pd.read_csv(tmp_path / "a" / "points.csv")
    assert (noisy[~noisy.congested].std_max_latency_ms > 0).all()  # noise drawn from std_ms = 0.5


def test_a_captured_platform_simulates_the_run_it_came_from(cli, tiny_cnn_path, tmp_path):
    real = tmp_path / "real"
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:2x1", "--batch", "1", "--rate", "50", "--batches", "12",
                 "--warmup", "1", "-o", real)
    assert result.exit_code == 0, result.stderr
    platform = tmp_path / "captured.toml"
    assert cli("platform", "from-run", real, "-o", platform).exit_code == 0
    p = read_platform(platform)
    assert p.workers_spec == "cpu:2x1" and {t.kind for t in p.times} == {"cpu:1"} and p.task_us >= 0
    points = sweep(cli, tiny_cnn_path, platform, tmp_path / "sim", "--batch", "1", "--rate", "50")
    assert not points.congested.any() and points.engine.eq("sim").all()
    assert cli("platform", "check", platform, tiny_cnn_path).exit_code == 0
    # captured from another file (the same split made again elsewhere): refused, unless vouched for, and recorded
    other = tmp_path / "other.toml"
    assert p.model_sha256 == p.target_sha256  # a whole model: its own source
    mine = f'target_sha256 = "{p.target_sha256}"'
    other.write_text(platform.read_text().replace(mine, f'target_sha256 = "{"0" * 64}"'))
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", other, "-o", tmp_path / "o"),
                          "add --trust-platform")
    sweep(cli, tiny_cnn_path, other, tmp_path / "trusted", "--batch", "1", "--rate", "50", "--trust-platform")
    assert json.loads((tmp_path / "trusted" / "run.json").read_text())["platform_trusted_from"] == "0" * 64
    assert json.loads((tmp_path / "sim" / "run.json").read_text())["platform_trusted_from"] is None
    # the host->device link a run's GPU workers measured becomes the platform's [transfer]; none measured: the default
    assert (p.bandwidth_GBps, p.latency_us) == (12.0, 10.0)
    meta = json.loads((real / "run.json").read_text())
    (real / "run.json").write_text(json.dumps({**meta, "transfer": {"bandwidth_GBps": 48.5, "latency_us": 7.25}}))
    assert cli("platform", "from-run", real, "-o", platform, "--force").exit_code == 0
    assert (read_platform(platform).bandwidth_GBps, read_platform(platform).latency_us) == (48.5, 7.25)
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--trust-platform", "-o", tmp_path / "o"), "give --platform")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--workers", "cpu:1x1,cuda:7", "-o",
                              tmp_path / "o"), "without --platform simulates --workers cpu:1x1,cuda:7 with this host's",
                          "no time for part 0 on cuda workers", "give --platform FILE")  # named an absent file's fix
    (tmp_path / "model.toml").write_text(other.read_text().replace(p.model_sha256, "1" * 64))
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", tmp_path / "model.toml",
                              "--trust-platform", "-o", tmp_path / "o"), "another model (sha256 111111111111")
    # times of one part name their model by target_sha256 alone (an older file): trust never takes them to another model
    unnamed = "\n".join(line for line in other.read_text().splitlines() if not line.startswith("model_sha256"))
    (tmp_path / "unnamed.toml").write_text(unnamed + "\n")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", tmp_path / "unnamed.toml",
                              "--trust-platform", "-o", tmp_path / "o"), "another model (sha256 000000000000")
    assert_one_line_error(cli("platform", "from-run", real, "-o", platform), "--force")
    assert_one_line_error(cli("platform", "from-run", tmp_path / "sim", "-o", tmp_path / "x.toml"), "real run")
    # an edited run.json is read as plot reads it: from-run took a schema from the future and said "simulated" of
    # an engine no staronnx writes
    import shutil

    meta = json.loads((real / "run.json").read_text())
    for key, value, fragment in (("schema_version", 99, "newer than this staronnx reads"),
                                 ("engine", "quantum", "'engine' is 'quantum', not real or sim"),
                                 ("parts", 0, "'parts' is 0, not a whole number from 1")):
        edited = tmp_path / f"edited_{key}"
        shutil.copytree(real, edited, dirs_exist_ok=True)
        (edited / "run.json").write_text(json.dumps({**meta, key: value}))
        assert_one_line_error(cli("platform", "from-run", edited, "-o", tmp_path / "e.toml"), fragment)


def test_a_platform_is_captured_from_the_runs_own_files_only(cli, tiny_cnn_path, tmp_path, monkeypatch):
    """Task times from the run's measured batches (and its calibration for what it never placed), never from the
    shared performance-model cache, which later runs change; -o never one of the run's own files."""
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    real = tmp_path / "real"
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "2", "--rate", "100", "--batches", "10",
               "--warmup", "1", "-o", real).exit_code == 0
    run = json.loads((real / "run.json").read_text())
    calibrated = {int(k): v for k, v in run["calibration"][0]["part_ms"].items()}
    assert list(calibrated) == [0] and calibrated[0] > 0
    # a later run at other batch sizes changes the shared cache; the capture does not see it
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1,4", "--rate", "100", "--batches", "5",
               "--warmup", "1", "-o", tmp_path / "later").exit_code == 0
    platform = tmp_path / "p.toml"
    assert cli("platform", "from-run", real, "-o", platform).exit_code == 0
    p = read_platform(platform)
    assert [(t.part, t.kind, t.batch) for t in p.times] == [(0, "cpu:1", 2)]
    batches = pd.read_csv(real / "batches.csv")
    measured = batches[batches.measured]
    ms = [1000 * (float(b) - float(a)) for a, b in (c.split(":", 1)[1].split("-") for c in measured.task_times)]
    assert p.times[0].mean_ms == pytest.approx(sum(ms) / len(ms), abs=1e-5)
    assert "the run's measured batches" in p.notes and p.task_us > 0
    # no measured batch (a header alone): the calibration's times, and no dispatch delay to measure
    (real / "batches.csv").write_text(batches.head(0).to_csv(index=False))
    assert cli("platform", "from-run", real, "-o", platform, "--force").exit_code == 0
    p = read_platform(platform)
    assert [(t.part, t.kind, t.batch, t.mean_ms) for t in p.times] == [(0, "cpu:1", 2, round(calibrated[0], 4))]
    assert p.task_us == 0 and "calibration alone" in p.notes
    (real / "batches.csv").write_text("")
    assert cli("platform", "from-run", real, "-o", platform, "--force").exit_code == 0
    del run["calibration"]
    (real / "run.json").write_text(json.dumps(run))
    assert_one_line_error(cli("platform", "from-run", real, "-o", platform, "--force"), "recorded no task time")
    # never a run's own file, even with --force; a link at -o is replaced, not followed
    before = (real / "run.json").read_text()
    assert_one_line_error(cli("platform", "from-run", real, "-o", real / "run.json", "--force"), "ending in .toml")
    assert (real / "run.json").read_text() == before
    link = tmp_path / "link.toml"
    link.symlink_to(real / "points.csv")
    points = (real / "points.csv").read_text()
    (real / "batches.csv").write_text(batches.to_csv(index=False))
    assert_one_line_error(cli("platform", "from-run", real, "-o", link), "--force")
    assert cli("platform", "from-run", real, "-o", link, "--force").exit_code == 0
    assert (real / "points.csv").read_text() == points and not link.is_symlink() and read_platform(link).times


@pytest.mark.parametrize("text, fragment", [
    (platform_text(times=[(0, "cpu:1", 1, 1.0)]) + "[[times]]\npart = 5\nkind = \"cpu:1\"\nbatch = 1\nmean_ms = 1\n",
     "part 5 does not exist"),
    (platform_text(extra="[transfer]\nbandwidth_GBps = -3.0\n"), "must be positive"),
    (platform_text('[[workers]]\nkind = "cuda"\ncount = 1\n'), "no time for part 0 on cuda workers"),
    (platform_text('[[workers]]\nkind = "tpu"\n'), "not a worker kind"),
    (platform_text(times=[(0, "cpu:1", 1, -1.0)]), "mean_ms"),
    (platform_text(times=[(0, "cpu:1", 1, 0.0)]), "'mean_ms' = 0: a task takes some time"),  # 0.00 ms latencies
    ("name = \"x\"\n", "no [[workers]]"),
    ("workers = [[[", "not valid TOML"),
    # a typo is said, not ignored (a dropped [transfr] table or task_usec key simulated another machine)
    (platform_text(extra="[transfr]\nbandwidth_GBps = 1.0\n"), "unknown key 'transfr': did you mean transfer?"),
    (platform_text(extra="[overhead]\ntask_usec = 3000\n"), "[overhead]: unknown key 'task_usec'"),
    (platform_text('[[workers]]\nkind = "cuda"\ncount = 1\nstream = 4\n'), "did you mean streams?"),
    (platform_text(extra='[[speeds]]\nkind = "cpu:1"\ncosts = "c.csv"\nop_factors = 3\n'),
     "op_factors must be a table"),
    ("workers = 3\n", "written as [[workers]] entries"),
    (platform_text(extra='[[speeds]]\nkind = "cpu:1"\ncosts = "c.csv"\nfactor = 0\n'), "factor = 0 would make"),
    (platform_text(extra='[[speeds]]\nkind = "cpu:1"\ncosts = "c.csv"\nop_factors = { Conv = 0 }\n'),
     "Conv = 0 would make its nodes take no time"),
    # a second time of one (part, kind, batch) replaced the first unsaid; "no" was read as true
    (platform_text(times=[(0, "cpu:1", 1, 1.0), (0, "cpu:1", 2, 2.0), (0, "cpu:1", 1, 50.0)]),
     "[[times]] #3 repeats [[times]] #1 (part 0, kind cpu:1, batch 1)"),
    ('estimate = "no"\n' + platform_text(), "estimate = 'no' must be true or false"),
])
def test_bad_platforms(cli, tiny_cnn_path, tmp_path, text, fragment):
    p = write(tmp_path / "p.toml", text)
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", p, "-o", tmp_path / "r"),
                          fragment)


def test_a_plan_part_without_times_and_other_engine_mistakes(cli, tiny_cnn_path, tmp_path):
    plan = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--offload", "0.2", "--no-verify", "-o", plan).exit_code == 0
    p = write(tmp_path / "p.toml", platform_text())  # times for part 0 only
    assert_one_line_error(cli("sweep", plan, "--engine", "sim", "--platform", p, "-o", tmp_path / "r"),
                          "no time for part 1 on cpu:1 workers")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--platform", p, "-o", tmp_path / "r"), "--engine sim")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "warp", "-o", tmp_path / "r"), "--engine 'warp'")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", tmp_path / "none.toml",
                              "-o", tmp_path / "r"), "not found")


def test_workers_auto_simulated_from_this_hosts_models_is_this_hosts_layout(cli, tiny_cnn_path, tmp_path, monkeypatch):
    """Without a GPU, `auto` simulated from the host's models is the layout a real `auto` sweep measured (it was
    simulated as a GPU layout, with no time for the GPU)."""
    from staronnx_cli.ortenv import cuda_status

    if cuda_status().usable:
        pytest.skip("a GPU here: auto includes it, and its models come from a real sweep of it")
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    args = ("sweep", tiny_cnn_path, "--workers", "auto", "--batch", "1", "--rate", "50", "--batches", "5")
    assert cli(*args, "-o", tmp_path / "real").exit_code == 0
    result = cli(*args, "--engine", "sim", "-o", tmp_path / "sim")
    assert result.exit_code == 0, result.stderr
    workers = [json.loads((tmp_path / run / "run.json").read_text())["workers"] for run in ("real", "sim")]
    assert workers[0] == workers[1] and "cuda" not in workers[1]


def test_a_simulated_resume_keeps_its_platform_and_noise(cli, tiny_cnn_path, tmp_path):
    p = write(tmp_path / "p.toml", platform_text())
    args = ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", p, "--batches", "5", "-o", tmp_path / "r")
    assert cli(*args, "--batch", "1", "--rate", "10").exit_code == 0
    write(p, platform_text(times=[(0, "cpu:1", 1, 12.0), (0, "cpu:1", 2, 16.0)]))  # another machine, same name
    assert_one_line_error(cli(*args, "--batch", "1,2", "--rate", "10", "--resume"), "was simulated on",
                          "that platform file as it was")
    write(p, platform_text())  # as it was: the same bytes
    assert_one_line_error(cli(*args, "--batch", "1,2", "--rate", "10", "--resume", "--sim-noise"),
                          "simulated without --sim-noise")
    assert cli(*args, "--batch", "1,2", "--rate", "10", "--resume").exit_code == 0


RAN = (0, 3)  # a sweep that ran: answered, or every point congested (NO_ANSWER)


def test_a_simulated_resume_from_this_hosts_models_refuses_models_changed_since(cli, tiny_cnn_path, tmp_path,
                                                                               monkeypatch):
    """Without --platform the simulated machine is this host's performance models, which every real sweep updates:
    a --resume after one simulated its new points on another machine than its first ones, unsaid."""
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    # exit 3: the sweep ran but every point congested (a machine busy with other work): its models learnt the same
    real = ("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--batches", "5")
    assert cli(*real, "--rate", "50", "-o", tmp_path / "real").exit_code in RAN
    sim = (*real, "--engine", "sim", "-o", tmp_path / "sim")
    assert cli(*sim, "--rate", "50").exit_code in RAN
    assert cli(*sim, "--rate", "50,60", "--resume").exit_code in RAN  # the same models: it continues
    other_n = ("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "4", "--batches", "5", "--rate", "50")
    assert cli(*other_n, "-o", tmp_path / "real4").exit_code in RAN  # N=4's models: none of the times N=1 uses
    assert cli(*sim, "--rate", "50,60,65", "--resume").exit_code in RAN
    assert cli(*real, "--rate", "60", "-o", tmp_path / "real2").exit_code in RAN  # N=1's learn more
    assert_one_line_error(cli(*sim, "--rate", "50,60,70", "--resume"), "simulated with this host's performance models "
                          "as they were", "a real sweep has changed them since")


def test_interpolation_between_and_beyond_measured_batch_sizes():
    assert interpolate({1: 10.0, 2: 16.0}, 4) == pytest.approx(28.0)
    assert interpolate({1: 10.0, 4: 28.0, 8: 40.0}, 2) == pytest.approx(16.0)
    assert interpolate({2: 8.0}, 6) == pytest.approx(24.0)  # one size: proportional
    # outside the measured sizes, never below what batching allows: a smaller batch at least the smallest
    # measured's time per query (2.5 ms at N=4, where the segment reads -5), a larger one at least the largest's
    assert interpolate({4: 10.0, 8: 30.0}, 1) == pytest.approx(2.5)
    assert interpolate({1: 20.0, 4: 3.09}, 8) == pytest.approx(3.09)  # times falling with N: not 0.1 ms


def test_platform_check_notes_times_that_fall_as_the_batch_grows(cli, tiny_cnn_path, tmp_path):
    p = write(tmp_path / "p.toml", platform_text(times=[(0, "cpu:1", 1, 20.0), (0, "cpu:1", 4, 3.09)]))
    result = cli("platform", "check", p, tiny_cnn_path)
    assert result.exit_code == 0, result.stderr
    assert "a larger batch takes less time: part 0 on cpu:1: 20 ms at N=1, 3.09 ms at N=4" in \
        " ".join(result.stdout.split())
    plain = cli("platform", "check", write(tmp_path / "q.toml", platform_text()), tiny_cnn_path)
    assert plain.exit_code == 0 and "larger batch" not in plain.stdout


def test_platform_check_refuses_times_of_another_target_as_the_sweep_does(cli, tiny_cnn_path, tmp_path):
    """`platform check h100_googlenet_whole.toml tiny_cnn` said the times were fine; the sweep refused them."""
    from pathlib import Path

    h100 = Path(__file__).resolve().parents[1] / "experiments" / "platforms" / "h100_googlenet_whole.toml"
    assert_one_line_error(cli("platform", "check", h100, tiny_cnn_path), "its task times are of another model")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", h100, "-o", tmp_path / "r"),
                          "its task times are of another model")
    result = cli("platform", "check", h100, "googlenet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("(measured)") == 1  # the name says it already: not twice


def test_platform_round_trips_through_its_toml_writer(tmp_path):
    import tomllib

    from staronnx_cli.runtime.platform import dump_platform

    text = platform_text(extra='[overhead]\ntask_us = 12.5\n[ray]\nresources = { "accelerator_type:H100" = 1 }\n')
    p = parse_platform(tomllib.loads(text))
    again = parse_platform(tomllib.loads(dump_platform(p)))  # a resource name that is no bare key: quoted
    assert again.workers == p.workers and again.times == p.times and again.task_us == 12.5
    assert again.ray_resources == {"accelerator_type:H100": 1.0}


def test_a_platform_gpu_with_several_streams_is_several_workers_sharing_its_memory(tmp_path):
    from staronnx_cli.runtime.platform import groups_of, write_platform
    from staronnx_cli.systems.sim import platform_workers

    text = platform_text('[[workers]]\nkind = "cuda"\ncount = 2\nstreams = 3\n\n[[workers]]\nkind = "cpu"\n'
                         'count = 1\ncores = 4\n', times=[(0, "cuda", 1, 1.0), (0, "cpu:4", 1, 5.0)],
                         extra="[ray]\nresources = { h100 = 1 }\n")
    platform = read_platform(write(tmp_path / "p.toml", text))
    assert platform.ray_resources == {"h100": 1.0}  # the nodes advise --ray confirms on
    workers = platform_workers(platform)
    assert [w.name for w in workers] == ["cuda0.0", "cuda0.1", "cuda0.2", "cuda1.0", "cuda1.1", "cuda1.2", "cpu0"]
    assert [w.memory_node for w in workers][:4] == ["cuda:0", "cuda:0", "cuda:0", "cuda:1"]
    assert platform.workers_spec == "cuda:0x3,cuda:1x3,cpu:1x4"
    assert groups_of(workers) == platform.workers  # a run's workers back to the same groups (platform from-run)
    write_platform(platform, tmp_path / "again.toml")
    again = read_platform(tmp_path / "again.toml")
    assert again.workers == platform.workers and again.ray_resources == platform.ray_resources
    with pytest.raises(Exception, match="streams = 2 is for GPU workers"):
        parse_platform({"workers": [{"kind": "cpu", "count": 1, "cores": 1, "streams": 2}]})


def test_a_simulated_sweep_holds_no_input_batches_so_its_memory_bound_counts_none(cli, tiny_cnn_path, tmp_path):
    """advise --batch 100000 on a platform was refused for 56 GiB of input batches the simulator never makes (and
    told to raise --max-memory, an option advise does not have)."""
    platform = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "60000", "--rate",
                 "100000", "--batches", "5", "--max-memory", "0.5", "-o", tmp_path / "r")
    assert result.exit_code == 3, result.stderr  # ran (and congested): 1.37 GiB of inputs were counted before


def test_a_platform_whose_times_fall_with_the_batch_is_noted_before_a_simulated_sweep(cli, tiny_cnn_path, tmp_path):
    """platform check said it, sweep used the times without a word."""
    p = write(tmp_path / "p.toml", platform_text(times=[(0, "cpu:1", 1, 10.0), (0, "cpu:1", 2, 8.0)]))
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", p, "--batch", "1", "--rate", "20",
                 "--batches", "10", "-o", tmp_path / "r")
    assert result.exit_code == 0, result.stderr
    assert ("in p.toml, a larger batch takes less time: part 0 on cpu:1: 10 ms at N=1, 8 ms at N=2 (noise, or an "
            "edit?)") in " ".join(result.output.split())
    quiet = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", write(tmp_path / "q.toml", platform_text()),
                "--batch", "1", "--rate", "20", "--batches", "10", "-o", tmp_path / "q")
    assert "a larger batch takes less time" not in quiet.output


def test_a_platform_captured_from_a_queue_delay_run_takes_full_batches_only():
    """--max-queue-delay closes batches early: every N=2 batch of a 50 q/s run held one query, and from-run recorded
    their time as S(2), so a simulation at N=2 cost one query per batch (fuzz round 7)."""
    from staronnx_cli.sweep.capture import _task_times

    def batch(k, n, queries, ms):
        return {"batch_index": k, "rate_qps": 50.0, "batch_size": n, "queries": queries, "measured": True,
                "task_times": f"0:0.0-{ms / 1000:.7f}", "placement": "0:cpu0"}

    frame = pd.DataFrame([batch(0, 2, 1, 0.18), batch(1, 2, 1, 0.18), batch(2, 2, 2, 0.30), batch(3, 2, 2, 0.30),
                          batch(4, 1, 1, 0.17)])
    times = _task_times(frame, {"cpu0": "cpu:1"}, 1)
    assert times[(0, "cpu:1", 2)].mean_ms == pytest.approx(0.30) and times[(0, "cpu:1", 1)].mean_ms == \
        pytest.approx(0.17)
