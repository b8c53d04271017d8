"""A short real sweep of a tiny model: structure and invariants of the result files (never a timing)."""

import json
from pathlib import Path

import onnx
import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.ortenv import cuda_status
from staronnx_cli.results.schema import BATCH_COLUMNS, POINT_COLUMNS


def test_random_arrivals_over_few_batches_are_noted_before_the_sweep(tmp_path):
    """K = 40 Poisson batches near the capacity called 2 of 20 seeds congested at 74-80 % (docs/sweep.md)."""
    from staronnx_cli.sweep.checks import SHARP_RANDOM_BATCHES, arrival_notes
    from staronnx_cli.sweep.settings import SweepSettings

    def notes(arrival, batches):
        return arrival_notes(SweepSettings(tmp_path, tmp_path / "r", arrival=arrival, batches=batches))

    assert notes("fixed", 40) == [] and notes("poisson", SHARP_RANDOM_BATCHES) == []
    assert notes("poisson", 40)[0].endswith("give --batches 120 or more for sharp verdicts there (docs/sweep.md)")
    assert notes("trace:q.txt", 119)[0].startswith("--arrival trace:q.txt with --batches 119: ")


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
    shown = ["batch_size", "rate_qps", "batch_index", "scheduled_release_s", "actual_release_s", "end_s", "placement"]
    assert (measured.first_query_latency_ms >= formation_ms - 1e-6).all(), measured[shown]
    assert (measured.actual_release_s >= measured.scheduled_release_s - 1e-6).all(), measured[shown]
    assert measured.placement.str.match(r"^0:cpu[01]$").all(), measured[shown]
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
    (["--rate", "1e300"], ["1e+300 q/s is more than any machine serves"]),  # its verdict printed 301 digits
    (["--rate", "1e-300"], ["e+298 h to arrive"]),  # 300 digits of hours before
    (["--batch", "0"], ["--batch"]),
    (["--batch", ""], ["--batch is empty"]),  # an empty shell variable ran the default batch sizes
    (["--workers", ""], ["--workers is empty"]),
    (["--warmup", "99999999999999999999999"], ["at most 1,000,000 batches per point"]),
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


def _points(run):
    return pd.read_csv(run / "points.csv")


@pytest.mark.realtime
def test_an_onnx_runtime_error_inside_one_task_fails_that_batch_and_the_sweep_goes_on(cli, tiny_cnn_path, tmp_path,
                                                                                       monkeypatch):
    from staronnx_cli.runtime.executors import ThreadExecutor

    monkeypatch.setenv("STARONNX_HOT_PATH", "python")  # the Python scheduler's path (test_core.py: the core's)
    real_input = ThreadExecutor._input

    def wrong_dtype_for_batch_4(self, k, name, size, *where):
        value = real_input(self, k, name, size, *where)
        return value.astype("float64") if k == 4 else value  # ONNX Runtime refuses it: INVALID_ARGUMENT

    monkeypatch.setattr(ThreadExecutor, "_input", wrong_dtype_for_batch_4)
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1,2", "--rate", "50",
                 "--batches", "8", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stderr
    points, batches = _points(run), pd.read_csv(run / "batches.csv")
    assert len(points) == 2 and (points.batches == 7).all()  # 8 measured, the failed one left out
    assert points.errors.str.contains("INVALID_ARGUMENT|Unexpected input data type", regex=True).all()
    failed = batches[batches.error.notna()]
    assert failed.batch_index.tolist() == [4, 4]


@pytest.mark.realtime
@pytest.mark.parametrize("hot_path", ["python", "native"])
def test_workers_that_cannot_run_one_batch_size_fail_its_points_only(cli, tiny_cnn_path, tmp_path, monkeypatch,
                                                                     hot_path):
    from staronnx_cli.runtime import core
    from staronnx_cli.runtime.executors import ThreadExecutor

    oom = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : out of memory at batch 3"
    if hot_path == "python" or core.unavailable():
        monkeypatch.setenv("STARONNX_HOT_PATH", "python")
        real_prepare = ThreadExecutor._prepare

        def refuse_batch_3(self, worker, m, warmup_runs):
            if self.batches[m] == 3:
                raise RuntimeError(oom)
            return real_prepare(self, worker, m, warmup_runs)

        monkeypatch.setattr(ThreadExecutor, "_prepare", refuse_batch_3)
    else:
        real_init = core.CoreExecutor.__init__

        def refuse_batch_3_natively(self, workers, part_files, batch, options=None):
            if batch == 3:
                raise RuntimeError(oom)
            real_init(self, workers, part_files, batch, options)

        monkeypatch.setattr(core.CoreExecutor, "__init__", refuse_batch_3_natively)
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "3,1", "--rate", "50,60",
                 "--batches", "3", "--warmup", "0", "-o", run)
    assert result.exit_code == 0, result.stderr
    points = _points(run)
    failed = points[points.batch_size == 3]
    assert len(failed) == 2 and (failed.batches == 0).all() and failed.errors.str.contains("out of memory").all()
    assert (points[points.batch_size == 1].batches == 3).all()
    assert "failed" in result.stdout


@pytest.mark.realtime
def test_dynamic_batching_releases_partial_batches_after_the_queue_delay(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    # tau = 20 ms, delay 5 ms: a batch of up to 4 never fills, each query goes alone after 5 ms
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "4", "--rate", "50",
                 "--max-queue-delay", "5", "--batches", "4", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stderr
    batches = pd.read_csv(run / "batches.csv")
    assert (batches.queries == 1).all()
    assert ((batches.scheduled_release_s - batches.first_arrival_s) * 1000).round(6).eq(5.0).all()
    assert (batches.first_query_latency_ms > 5.0).all()
    assert json.loads((run / "run.json").read_text())["max_queue_delay_ms"] == 5.0


@pytest.mark.realtime
def test_performance_models_are_cached_per_host_and_model_and_recalibrated_on_demand(cli, tiny_cnn_path, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    args = ["sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "12",
            "--warmup", "1"]
    assert cli(*args, "-o", tmp_path / "a").exit_code == 0
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    cache = Path(meta["perfmodel"])
    assert cache.parent == tmp_path / "cache" / "perfmodels" and meta["model_sha256"][:16] in cache.name
    first = json.loads(cache.read_text())["models"][0]
    # calibrated alone before the point: 11 runs, the first dropped (the point's tasks may add more samples:
    # those within 5 std of the calibrated mean, StarPU's rule)
    assert (first["part"], first["kind"], first["batch"]) == (0, "cpu:1", 1) and first["count"] >= 10
    assert [(c["calibrated"], c["runs"]) for c in meta["calibration"]] == [(True, 11)]
    assert cli(*args, "-o", tmp_path / "b").exit_code == 0  # reuses and extends the same models
    assert json.loads(cache.read_text())["models"][0]["count"] >= first["count"]
    assert [c["calibrated"] for c in json.loads((tmp_path / "b" / "run.json").read_text())["calibration"]] == [False]
    assert cli(*args, "--calibrate", "-o", tmp_path / "c").exit_code == 0  # starts afresh
    assert [c["calibrated"] for c in json.loads((tmp_path / "c" / "run.json").read_text())["calibration"]] == [True]


def test_sweep_refuses_a_static_policy_without_its_worker_kind(cli, tiny_cnn_path, tmp_path):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--policy", "static:cuda", "--workers", "cpu:1x1",
                              "-o", tmp_path / "r"), "cuda workers")
    # a kind per part: more kinds than parts, or an empty one, was accepted and ignored
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--policy", "static:cpu,cpu", "--workers", "cpu:1x1",
                              "-o", tmp_path / "r"), "names 2 kinds for 1 part(s)")
    for policy in ("static:", "static:cpu,,cpu"):
        assert_one_line_error(cli("sweep", tiny_cnn_path, "--policy", policy, "-o", tmp_path / "r"),
                              "static takes worker kinds per part")


def test_sweep_refuses_an_unknown_arrival_process_and_a_negative_queue_delay(cli, tiny_cnn_path, tmp_path):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--arrival", "bursty", "-o", tmp_path / "r"), "--arrival")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--max-queue-delay", "-1", "-o", tmp_path / "r"), "delay")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--arrival", f"trace:{tmp_path}/none.txt", "-o",
                              tmp_path / "r"), "trace")


@pytest.mark.realtime
def test_ctrl_c_keeps_the_finished_points_and_resume_completes_the_grid(tiny_cnn_path, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "staronnx_cli", "sweep", str(tiny_cnn_path), "--workers", "cpu:1x1", "--batch",
            "1", "--rate", "20,21,22,23,24,25", "--batches", "20", "--warmup", "0", "-o", str(run)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((run / "points.csv").exists() and  # begun: empty until its first
                                               (run / "points.csv").read_text().count("\n") >= 2):  # row's write
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    kept = _points(run)
    assert 1 <= len(kept) < 6
    result = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    points = _points(run)
    assert sorted(points.rate_qps) == [20, 21, 22, 23, 24, 25]
    # the finished points are kept as they were (as text: a later point's note makes the reason column text)
    assert points.iloc[: len(kept)].astype(str).equals(kept.astype(str))


def test_sweep_of_a_plan_whose_source_model_changed(cli, tmp_path, tiny_cnn_path, monkeypatch):
    import os
    import shutil

    import onnx

    model = tmp_path / "model.onnx"
    shutil.copy(tiny_cnn_path, model)
    plan = tmp_path / "plan"
    monkeypatch.chdir(tmp_path)
    assert cli("split", "model.onnx", "--offload", "0.2", "--no-verify", "-o", plan).exit_code == 0
    assert json.loads((plan / "plan.json").read_text())["source_model"] == os.path.abspath(model)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.onnx").write_bytes(b"another model of the same name")  # read as the plan's source, from
    monkeypatch.chdir(elsewhere)  # the current directory: the plan was refused as made from another version
    result = cli("sweep", plan, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "4", "-o",
                 tmp_path / "ok")
    assert result.exit_code == 0, result.stderr
    changed = onnx.load(str(model))
    changed.doc_string = "edited after the split"  # any change of the file changes its sha256
    onnx.save(changed, str(model))
    assert_one_line_error(cli("sweep", plan, "-o", tmp_path / "r"), "sha256 differs")


@pytest.mark.realtime
def test_native_and_roundrobin_baselines_write_the_same_files(cli, tiny_cnn_path, tmp_path):
    common = ["--batch", "1,2", "--rate", "40", "--batches", "6", "--warmup", "1"]
    native, rr = tmp_path / "native", tmp_path / "rr"
    result = cli("sweep", tiny_cnn_path, "--system", "native", "--workers", "cpu:1x2", *common, "-o", native)
    assert result.exit_code == 0, result.stderr
    result = cli("sweep", tiny_cnn_path, "--system", "roundrobin", "--workers", "cpu:2x1", *common, "-o", rr)
    assert result.exit_code == 0, result.stderr
    for run, system, policy in ((native, "native", "fifo"), (rr, "roundrobin", "eager")):
        points, batches = pd.read_csv(run / "points.csv"), pd.read_csv(run / "batches.csv")
        assert list(points.columns) == POINT_COLUMNS and list(batches.columns) == BATCH_COLUMNS
        assert (points.system == system).all() and (points.policy == policy).all()
        assert (points.batches == 6).all(), points[["batch_size", "batches", "congested", "reason", "errors"]]
        assert json.loads((run / "run.json").read_text())["system"] == system
        measured = batches[batches.measured]
        formation_ms = 1000 * (measured.batch_size - 1) / measured.rate_qps
        assert (measured.first_query_latency_ms >= formation_ms - 1e-6).all()
        starts = measured.task_times.str.extract(r"^0:([0-9.]+)-")[0].astype(float)
        assert (starts >= measured.scheduled_release_s - 1e-6).all()  # nothing starts before its release
    assert pd.read_csv(native / "batches.csv").placement.eq("0:cpu0").all()  # one session, one device
    assert set(pd.read_csv(rr / "batches.csv").placement) <= {"0:cpu0", "0:cpu1"}


def test_ort_parallel_is_the_native_loop_over_a_session_in_onnx_runtimes_parallel_mode(cli, tiny_cnn_path, tmp_path,
                                                                                        monkeypatch):
    import onnxruntime as ort

    made = []
    real_session = ort.InferenceSession

    def recording(path, options=None, *args, **kwargs):
        made.append((options.execution_mode, options.inter_op_num_threads, options.intra_op_num_threads))
        return real_session(path, options, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    run = tmp_path / "par"
    result = cli("sweep", tiny_cnn_path, "--system", "ortparallel", "--workers", "cpu:1x2", "--batch", "1", "--rate",
                 "40", "--batches", "6", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stderr
    assert (ort.ExecutionMode.ORT_PARALLEL, 2, 1) in made  # independent nodes on 2 inter-op threads, 1 each
    assert (pd.read_csv(run / "points.csv").system == "ortparallel").all()
    assert "parallel execution mode" in json.loads((run / "run.json").read_text())["native"]


def test_baseline_bad_input(cli, tiny_cnn_path, tmp_path):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "roundrobin", "--policy", "eager", "-o",
                              tmp_path / "p"), "--policy eager applies to --system staronnx")  # recorded eager, unsaid
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "native", "--policy", "dmda", "-o", tmp_path / "p"),
                          "--policy dmda applies to --system staronnx")  # the default named: accepted, then unused
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--policy", "", "-o", tmp_path / "p"), "--policy is empty")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--rate", "", "-o", tmp_path / "p"), "--rate is empty")
    plan = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--offload", "0.2", "--no-verify", "-o", plan).exit_code == 0
    assert_one_line_error(cli("sweep", plan, "--system", "native", "-o", tmp_path / "r"), "whole model")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "native", "--workers", "cpu:2x1", "-o",
                              tmp_path / "r"), "one worker")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "vllm", "-o", tmp_path / "r"), "--system 'vllm'")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "native", "--engine", "sim", "-o",
                              tmp_path / "r"), "real only")
    assert_one_line_error(cli("sweep", plan, "--system", "ortparallel", "-o", tmp_path / "r"), "whole model")


def test_review_mistakes_get_one_line(cli, tiny_cnn_path, tmp_path):
    """Found by a walk through the README: each of these once ran on, crashed or answered off the point."""
    run = tmp_path / "run"
    args = ["sweep", tiny_cnn_path, "--engine", "sim", "--workers", "cpu:1x1", "--batch", "1", "--rate", "50",
            "--batches", "3", "-o", run]
    # a simulated sweep needs this host's models of the model: make them with a short real one first
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches", "12",
               "-o", tmp_path / "real").exit_code == 0
    assert cli(*args).exit_code == 0
    assert_one_line_error(cli(*args[:-2], "--policy", "eager", "-o", run, "--resume"), "policy")  # not the same run
    other = tmp_path / "other.onnx"  # another model: its sha256 alone was shown, twice
    proto = onnx.load(str(tiny_cnn_path))
    proto.doc_string = "another"
    onnx.save(proto, str(other))
    assert_one_line_error(cli("sweep", other, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50", "--batches",
                              "12", "-o", tmp_path / "real", "--resume"),
                          f"'{tmp_path / 'real'}' measured tiny_cnn (sha256 ", "this sweep other (sha256 ")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--seed", "-1", "-o", tmp_path / "s"), "--seed -1")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--sim-noise", "-o", tmp_path / "s"), "add --engine sim")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--rate", "20:10:5", "-o", tmp_path / "s"), "STOP is below")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--engine", "sim", "--workers", "cpu:1x1", "--platform",
                              tmp_path / "p.toml", "-o", tmp_path / "s"), "drop one")
    assert cli("platform", "from-run", tmp_path / "real", "-o", tmp_path / "p.toml").exit_code == 0
    assert_one_line_error(cli("sweep", "tiny_transformer", "--engine", "sim", "--platform", tmp_path / "p.toml",
                              "-o", tmp_path / "s"), "another model")
    jammed = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", tmp_path / "p.toml", "--batch", "1",
                 "--rate", "100000", "--batches", "3", "-o", tmp_path / "j")
    assert jammed.exit_code == 3 and "no uncongested point" in jammed.stdout  # ran, wrote, no answer
    assert_one_line_error(cli("plot", tmp_path / "j", "--table"), "lower rates")
    points = pd.read_csv(run / "points.csv")
    assert len(points) == 1  # --batch 1,1 would have been measured once too (duplicates dropped)


def test_resume_refuses_a_run_measured_by_other_point_rules(cli, tiny_cnn_path, tmp_path):
    """Points measured and judged by other rules (warm-up, window, congestion) would not compare with new ones."""
    from pathlib import Path

    from staronnx_cli.sweep.point import JUDGING

    golden = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    args = ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", golden, "--batch", "1", "--rate", "100,200",
            "--batches", "10", "--warmup", "2", "-o", tmp_path / "run")
    assert cli(*args).exit_code == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["judging"] == JUDGING >= 7
    assert cli(*args, "--resume").exit_code == 0  # the same rules: resumed
    del meta["judging"]  # a run.json of an older staronnx
    (tmp_path / "run" / "run.json").write_text(json.dumps(meta))
    assert_one_line_error(cli(*args, "--resume"), "measured by the point rules of staronnx",
                          f"(version 1; this one: {JUDGING})", "new -o")


def test_the_progress_counts_each_point_to_its_plan_whatever_runs_longer():
    """An extended point never counts past its plan; a point stopped early counts in full once finished; a mix
    point (its batches' seconds not N / rate each) spreads its seconds over its batches."""
    from staronnx_cli.sweep.progress import SweepProgress

    told = []
    p = SweepProgress(listener=lambda progress: told.append((progress.point, progress.batches_done)))
    p.add(10, 1.0)
    p.add(4, 0.5)
    p.start("N=1 at 10 q/s", 10, 1.0)
    for _ in range(13):  # three extension batches beyond the plan
        p.batch()
    assert (p.batches_done, p.seconds_done) == (10, pytest.approx(1.0))
    p.finish()
    p.start("a mix point", 4, 0.5)
    p.batch()
    assert (p.batches_done, p.seconds_done) == (11, pytest.approx(1.125))
    p.finish()  # stopped early: done as planned
    assert (p.batches_done, p.batches_total, p.seconds_done, p.seconds_total) == (14, 14, pytest.approx(1.5),
                                                                                 pytest.approx(1.5))
    assert told[0] == ("", 0) and ("a mix point", 10) in told and told[-1] == ("a mix point", 14)  # batches: throttled


def test_a_resume_takes_another_spelling_of_the_same_layout(cli, tiny_cnn_path, tmp_path):
    """cpu:1 is cpu:1x1: the resume was refused ("measured with workers = 'cpu:1x1', this sweep has 'cpu:1'"), and
    rows of both spellings are one layout to the readers."""
    run = tmp_path / "run"
    args = ("sweep", tiny_cnn_path, "--batch", "1", "--batches", "5", "--warmup", "1", "-o", run)
    assert cli(*args, "--workers", "cpu:1x1", "--rate", "50").exit_code == 0
    assert_one_line_error(cli(*args, "--workers", "cpu:2", "--rate", "50,60", "--resume"),
                          "workers = 'cpu:1x1', this sweep has 'cpu:2'")  # another layout is still another
    result = cli(*args, "--workers", "cpu:1", "--rate", "50,60", "--resume")
    assert result.exit_code == 0, result.stderr
    assert cli("report", run, "-o", tmp_path / "r.md").exit_code == 0
    assert len(pd.read_csv(run / "points.csv")) == 2


def test_a_resume_on_the_other_hot_path_is_refused(cli, tiny_cnn_path, tmp_path, monkeypatch):
    """Points of the native core and of the Python scheduler (several times its cost per task) were mixed in one
    run, and run.json still named the first."""
    run = tmp_path / "run"
    args = ("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--batches", "5", "--warmup", "1", "-o",
            run)
    assert cli(*args, "--rate", "50").exit_code == 0
    if json.loads((run / "run.json").read_text())["hot_path"] != "native core":
        pytest.skip("the native core is not built here")
    monkeypatch.setenv("STARONNX_HOT_PATH", "python")
    assert_one_line_error(cli(*args, "--rate", "50,60", "--resume"), "was measured on the native core",
                          "their points would not compare", "without STARONNX_HOT_PATH=python")
    assert len(pd.read_csv(run / "points.csv")) == 1


def test_the_rates_not_run_after_a_congested_one_are_one_line_per_batch_size(cli, tiny_cnn_path, tmp_path):
    """Every congested batch size printed 6-7 'congested: not run: ...' lines, one per higher rate of the grid."""
    platform = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "1,2", "--rate",
                 "100,1500,3000,5000,8000", "--batches", "20", "-o", tmp_path / "run")
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "N=1 3 rates, 3000 to 8000 q/s, not run: batch 1 was already congested at 1500 q/s" in lines
    assert "N=2 3 rates, 3000 to 8000 q/s, not run: batch 2 was already congested at 1500 q/s" in lines
    assert not [line for line in lines if "congested: not run" in line]
    assert lines.index("N=1 3 rates, 3000 to 8000 q/s, not run: batch 1 was already congested at 1500 q/s") < \
        next(i for i, line in enumerate(lines) if line.startswith("N=2 100 q/s"))  # said before the next N


def test_a_resume_after_a_congested_point_goes_on_as_the_run_would_have(cli, tiny_cnn_path, tmp_path):
    """Interrupted right after its congested point, a resumed run measured the higher rates anyway: the rates after
    a congested (or failed) point are 'not run', resumed or not."""
    platform = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    args = ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", platform, "--batch", "1", "--rate",
            "100,1500,3000,5000", "--batches", "20", "-o", tmp_path / "run")
    assert cli(*args).exit_code == 0
    whole = _points(tmp_path / "run")
    lines = (tmp_path / "run" / "points.csv").read_text().splitlines(keepends=True)
    (tmp_path / "run" / "points.csv").write_text("".join(lines[:3]))  # the header, 100 and 1500 (congested)
    assert cli(*args, "--resume").exit_code == 0
    resumed = _points(tmp_path / "run")
    assert resumed.reason.tolist() == whole.reason.tolist()
    assert resumed.reason.tolist()[2:] == ["not run: batch 1 was already congested at 1500 q/s"] * 2


def test_a_batch_size_whose_every_batch_fails_stops_at_its_first_failed_rate(cli, tiny_cnn_path, tmp_path,
                                                                             monkeypatch):
    """A failed point is not congested, yet a higher rate fails as well: the grid's next rates are said not run
    (they all ran and failed), and --rate auto does not probe above it."""
    from staronnx_cli.analysis.verdict import run_verdict
    from staronnx_cli.results.read import read_run
    from staronnx_cli.runtime.executors import ThreadExecutor

    monkeypatch.setenv("STARONNX_HOT_PATH", "python")
    real_input = ThreadExecutor._input

    def wrong_dtype_at_batch_2(self, k, m, name, size, *where):
        value = real_input(self, k, m, name, size, *where)
        return value.astype("float64") if size == 2 else value  # ONNX Runtime refuses every batch of 2

    monkeypatch.setattr(ThreadExecutor, "_input", wrong_dtype_at_batch_2)
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1,2", "--rate", "50,100,200",
                 "--batches", "5", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stderr
    twos = _points(run).query("batch_size == 2").sort_values("rate_qps")
    assert twos.reason.tolist() == ["failed: every batch failed", "not run: batch 2 already failed at 50 q/s (every "
                                    "batch)", "not run: batch 2 already failed at 50 q/s (every batch)"]
    assert not twos.congested.any()  # failed, as the batch size is: not congested at any rate
    said = " ".join(result.stdout.split())
    assert "N=2 100 q/s failed" not in said and "N=2 congested" not in said
    assert "N=2 2 rates, 100 to 200 q/s, not run: batch 2 already failed at 50 q/s (every batch)" in said
    assert any("N=2" in line and "failed" in line for line in run_verdict(read_run(run)))
    lines = (run / "points.csv").read_text().splitlines(keepends=True)
    (run / "points.csv").write_text("".join(lines[:5]))  # interrupted after N=2's failed point: resumed alike
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1,2", "--rate", "50,100,200",
               "--batches", "5", "--warmup", "1", "-o", run, "--resume").exit_code == 0
    assert _points(run).query("batch_size == 2").sort_values("rate_qps").reason.tolist() == twos.reason.tolist()
