"""Faults (issue 13): what a typo, a crash or a second writer must never do. Each case asserts the exit code, the
one line, and the files left behind."""

import io
import json
import shutil
import threading

import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.errors import UserError, first_line


@pytest.fixture
def workdir(tmp_path, tiny_cnn_path):
    """A user's folder: a model, its costs, and notes of their own."""
    shutil.copy(tiny_cnn_path, tmp_path / "m.onnx")
    (tmp_path / "notes.txt").write_text("mine\n")
    return tmp_path


@pytest.fixture
def costs(workdir, cli):
    path = workdir / "costs.csv"
    assert cli("profile", workdir / "m.onnx", "--device", "cpu:1", "--runs", "2", "--warmup", "0", "--no-overhead",
               "-o", path).exit_code == 0
    return path


def test_split_force_never_deletes_a_folder_it_did_not_write(cli, workdir, costs, monkeypatch):
    monkeypatch.chdir(workdir)
    before = sorted(p.name for p in workdir.iterdir())
    assert_one_line_error(cli("split", "m.onnx", "--costs", "costs.csv", "-o", ".", "--force"),
                          "holds 'm.onnx', which split does not write")
    assert sorted(p.name for p in workdir.iterdir()) == before  # model, costs and notes all there
    (workdir / "runs").mkdir()
    (workdir / "runs" / "other_run.csv").write_text("x\n")
    assert_one_line_error(cli("split", "m.onnx", "--costs", "costs.csv", "-o", "runs", "--force"),
                          "holds 'other_run.csv'")
    assert (workdir / "runs" / "other_run.csv").exists()


def test_split_force_never_deletes_its_own_input_and_replaces_a_real_plan(cli, workdir, costs, monkeypatch):
    monkeypatch.chdir(workdir)
    assert cli("split", "m.onnx", "--costs", "costs.csv", "-o", "plan", "--no-verify").exit_code == 0
    shutil.copy(costs, workdir / "plan" / "costs.csv")
    assert_one_line_error(cli("split", "m.onnx", "--costs", "plan/costs.csv", "-o", "plan", "--force"),
                          "an input of this split")
    assert (workdir / "plan" / "costs.csv").exists() and (workdir / "plan" / "plan.json").exists()
    (workdir / "plan" / "costs.csv").unlink()
    result = cli("split", "m.onnx", "--costs", "costs.csv", "-o", "plan", "--force", "--no-verify")
    assert result.exit_code == 0, result.stderr  # a plan of ours is replaced
    (workdir / "empty").mkdir()
    assert cli("split", "m.onnx", "--costs", "costs.csv", "-o", "empty", "--force", "--no-verify").exit_code == 0


@pytest.mark.parametrize("rate, fragment", [
    ("nan", "positive, finite"), ("inf", "positive, finite"), ("5,nan", "positive, finite"),
    ("10:nan:10", "finite numbers"), ("10:100:1e-9", "rates in one grid"),
])
def test_rates_that_are_not_finite_or_too_many_are_refused_not_run(cli, tiny_cnn_path, tmp_path, rate, fragment):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--rate", rate, "-o", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


def test_an_error_message_never_shows_rich_emoji_codes(cli, tiny_cnn_path, tmp_path):
    result = cli("sweep", tiny_cnn_path, "--rate", "10:100:1e-9", "-o", tmp_path / "r")
    assert "10:100:1e-9" in result.stderr  # not "10💯1e-9"


def test_an_arrival_trace_with_nan_and_a_nan_delay_are_refused(cli, tiny_cnn_path, tmp_path):
    trace = tmp_path / "t.txt"
    trace.write_text("0\n0.1\nnan\n0.3\n")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--arrival", f"trace:{trace}", "-o", tmp_path / "r"),
                          "line 3", "not a finite time")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--arrival", "trace:", "-o", tmp_path / "r"),
                          "--arrival trace: names no file")  # was "arrival trace '.' is a directory"
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--max-queue-delay", "nan", "-o", tmp_path / "r"),
                          "--max-queue-delay nan")


def test_an_exception_without_a_message_is_still_one_line():
    assert first_line(MemoryError()) == "MemoryError"
    assert first_line(RuntimeError("\n  \nsecond line")) == "second line"
    assert first_line(ValueError("x" * 500), 20) == "x" * 20


def test_a_worker_failing_with_an_empty_exception_fails_the_batch_size_instead_of_hanging(tiny_cnn_path,
                                                                                           monkeypatch):
    from staronnx_cli.kinds import CPU
    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.workers import WorkerSpec

    def out_of_memory(self, worker, m, warmup_runs):
        raise MemoryError()

    monkeypatch.setattr(ThreadExecutor, "_prepare", out_of_memory)
    outcome = []

    def build():
        try:
            ThreadExecutor(RealLoop(), [WorkerSpec("cpu0", CPU, (0,))], [tiny_cnn_path], 1)
        except UserError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "ThreadExecutor hung on an exception without a message"
    assert outcome == ["worker cpu0 cannot prepare its sessions: MemoryError"]


SWEEP = ["--workers", "cpu:1x1", "--batch", "1", "--rate", "20,40", "--batches", "4", "--warmup", "1"]


def test_a_torn_last_row_is_cut_and_uncommitted_batch_rows_dropped_on_resume(cli, tiny_cnn_path, tmp_path):
    import pandas as pd

    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    points, batches = run / "points.csv", run / "batches.csv"
    whole = points.read_text()
    points.write_text(whole[: whole.rstrip("\n").rfind("\n") + 1] + "staronnx,real,dmda,cpu:1x1,1,40.0,4,1.2")
    # the 40 q/s point "crashed" after writing its batch rows and part of its points row
    plot = cli("plot", run, "--table", "--format", "md")
    assert plot.exit_code == 0 and "| 40 |" not in plot.stdout, plot.stderr  # a torn row is not a finished point
    result = cli("sweep", tiny_cnn_path, *SWEEP, "-o", run, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "its last line was incomplete" in result.stdout and "rows of a point that never finished" in result.stdout
    finished = pd.read_csv(points)
    assert sorted(zip(finished.batch_size, finished.rate_qps)) == [(1, 20.0), (1, 40.0)]  # each once, whole
    again = cli("sweep", tiny_cnn_path, *SWEEP, "-o", run, "--resume")  # intact files: nothing said, nothing cut
    assert again.exit_code == 0 and "incomplete" not in again.stdout and "never finished" not in again.stdout
    rows = pd.read_csv(batches)
    for rate, mine in rows.groupby("rate_qps"):  # each batch once: indices 0..k-1 (1 warm-up + 4, and any
        assert sorted(mine.batch_index) == list(range(len(mine))) and len(mine) >= 5, rate  # extension a noisy
        # machine asked for)


def test_a_second_writer_is_refused_naming_the_holder(cli, tiny_cnn_path, tmp_path):
    import os

    from staronnx_cli.dirlock import run_lock

    run = tmp_path / "run"
    with run_lock(run):
        for extra in ([], ["--force"]):
            assert_one_line_error(cli("sweep", tiny_cnn_path, *SWEEP, "-o", run, *extra),
                                  "being written by another staronnx command", f"pid {os.getpid()}")
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0  # released with its holder


def test_a_result_file_that_cannot_be_written_is_one_line(tmp_path):
    from staronnx_cli.results.schema import POINT_COLUMNS, append_rows

    blocked = tmp_path / "points.csv"
    blocked.mkdir()  # e.g. a full disk or a read-only file system: any OSError
    with pytest.raises(UserError, match="cannot write .*points measured before are kept"):
        append_rows(blocked, POINT_COLUMNS, [{"batch_size": 1}])


def test_a_point_of_few_batches_far_beyond_capacity_is_congested(cli, tiny_cnn_path, tmp_path):
    import pandas as pd

    for batches in (5, 2):
        run = tmp_path / f"b{batches}"
        cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "1e9", "--batches", batches,
            "--warmup", "0", "-o", run)
        point = pd.read_csv(run / "points.csv").iloc[0]
        assert bool(point.congested), point.reason  # not rho_max = 1e9


def test_memory_is_checked_before_anything_runs(cli, tiny_cnn_path, tmp_path):
    hours = ("--max-hours", "1e12")  # the duration check would refuse them first
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batches", "1000000", "--max-memory", "0.5", *hours, "-o",
                              tmp_path / "r"), "GiB of schedule and records", "--max-memory")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batches", "100000000", *hours, "-o", tmp_path / "r"),
                          "at most 1,000,000 batches per point")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batch", "4000000", *hours, "-o", tmp_path / "r"),
                          "GiB of input batches")
    # ONNX Runtime's tensors: tiny_cnn writes 0.15 MiB per sample, 14.5 GiB at N = 100,000 (23 GB seen in top)
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batch", "100000", "--max-memory", "12", *hours, "-o",
                              tmp_path / "r"), "14.53 GiB of ONNX Runtime tensors on 1 worker(s)")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--max-memory", "nan", "-o", tmp_path / "r"), "--max-memory")
    assert not (tmp_path / "r").exists()


def test_a_model_that_is_no_regular_file_or_that_ort_cannot_load_fails_before_any_point(cli, tmp_path):
    from onnx import TensorProto, helper, save

    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    assert_one_line_error(cli("sweep", tmp_path / "zero.onnx", "-o", tmp_path / "r"), "not a regular file")
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "odd.onnx")
    assert_one_line_error(cli("sweep", tmp_path / "odd.onnx", "-o", tmp_path / "r"), "ONNX Runtime cannot load")
    assert not (tmp_path / "r").exists()


def test_a_plan_whose_parts_were_changed_or_point_outside_is_refused(cli, workdir, costs, monkeypatch):
    import json

    monkeypatch.chdir(workdir)
    assert cli("split", "m.onnx", "--costs", "costs.csv", "-o", "plan", "--no-verify").exit_code == 0
    part = workdir / "plan" / "part_1.onnx"
    part.write_bytes(part.read_bytes() + b"\0")
    assert_one_line_error(cli("sweep", "plan", "-o", "r"), "part_1.onnx is not the file split wrote")
    plan = json.loads((workdir / "plan" / "plan.json").read_text())
    plan["parts"][1]["file"] = "../m.onnx"
    (workdir / "plan" / "plan.json").write_text(json.dumps(plan))
    assert_one_line_error(cli("sweep", "plan", "-o", "r"), "outside its directory")
    plan["parts"][1]["file"] = "part_1.onnx"
    plan["edges"][-1]["source"], plan["edges"][-1]["target"] = 1, 0  # the native core wrote past a buffer
    (workdir / "plan" / "plan.json").write_text(json.dumps(plan))
    assert_one_line_error(cli("sweep", "plan", "-o", "r"), "edge 1 -> 0 does not run from an earlier part")
    plan["edges"][-1]["source"], plan["edges"][-1]["target"] = 0, 1
    for edit, fragment in ((lambda p: p["parts"][0].update(file=None), "part 0 names no file"),
                           (lambda p: p.update(source_model=None), "source_model"),
                           (lambda p: p.update(dag="x"), "dag must be an object"),
                           (lambda p: p.update(dag={"launch_order": [9]}), "order each of its 2 parts once"),
                           (lambda p: p.update(edges=[]), "reads 'image', which no edge brings it"),
                           # a tensor moved to an edge whose source does not make it: the Python path ran the part
                           # before its real source ended (latencies too low); parts listed out of order; times
                           # that are no time (a negative critical path, an internal error)
                           (lambda p: p["edges"][-1]["tensors"].append("image"), "brings 'image', which is not among "
                            "part 0's outputs"),
                           (lambda p: p.update(parts=p["parts"][::-1]), "their indexes read [1, 0]"),
                           (lambda p: p["parts"][1].update(estimated_us={"cpu": -5.0}), "part 1's estimated_us"),
                           (lambda p: p["parts"][1].update(estimated_us={"cpu": "5"}), "part 1's estimated_us"),
                           (lambda p: p["parts"][0].update(share=[1]), "part 0's share must be a number")):
        edited = json.loads(json.dumps(plan))
        edit(edited)
        (workdir / "plan" / "plan.json").write_text(json.dumps(edited))
        assert_one_line_error(cli("sweep", "plan", "-o", "r"), fragment)
    (workdir / "plan" / "plan.json").write_text("[]")
    assert_one_line_error(cli("sweep", "plan", "-o", "r"), "not a staronnx plan")


def test_outputs_that_would_overwrite_a_file_or_a_run_are_refused(cli, tiny_cnn_path, tmp_path):
    (tmp_path / "file").write_text("keep\n")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "-o", tmp_path / "file"), "is a file")
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    before = (run / "run.json").read_text()
    assert_one_line_error(cli("trace", run, "-o", run / "run.json"), "is the run.json of the run")
    other = tmp_path / "other"
    shutil.copytree(run, other)  # another run's file, --force or not: it replaced that run's metadata
    assert_one_line_error(cli("trace", run, "-o", other / "run.json", "--force"),
                          f"is the run.json of the run '{other}'")
    assert (other / "run.json").read_text() == before
    assert (run / "run.json").read_text() == before and (tmp_path / "file").read_text() == "keep\n"


@pytest.mark.realtime
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL", "SIGTERM"])
def test_sweeps_interrupted_at_random_moments_resume_to_the_whole_grid(tiny_cnn_path, tmp_path, signal_name):
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    rng = random.Random(f"faults-{signal_name}")  # seeded: the same moments on every run of the suite
    run = tmp_path / "run"
    grid = ["--workers", "cpu:1x1", "--batch", "1,2", "--rate", "20,40,60,80", "--batches", "6", "--warmup", "1"]
    env = {**os.environ, "COLUMNS": "200"}

    def sweep(*extra):
        resume = ["--resume"] if (run / "run.json").exists() else []
        return subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", str(tiny_cnn_path), *grid, "-o",
                                 str(run), *resume, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env, text=True)

    for _ in range(3):
        proc = sweep()
        time.sleep(rng.uniform(1.0, 5.0))  # start-up (imports, sessions) included: anywhere in the run
        proc.send_signal(getattr(signal, signal_name))
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
    final = sweep()
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    points_text, batches_text = (run / "points.csv").read_text(), (run / "batches.csv").read_text()
    assert points_text.endswith("\n") and batches_text.endswith("\n")  # no torn row left
    points, batches = pd.read_csv(run / "points.csv"), pd.read_csv(run / "batches.csv")
    keys = list(zip(points.batch_size, points.rate_qps))
    assert sorted(keys) == sorted((n, r) for n in (1, 2) for r in (20.0, 40.0, 60.0, 80.0))  # each point once
    assert not batches.duplicated(["batch_size", "rate_qps", "batch_index"]).any()
    ran = points[points.batches > 0]
    for n, rate in zip(ran.batch_size, ran.rate_qps):
        mine = batches[(batches.batch_size == n) & (batches.rate_qps == rate)]
        assert list(mine.batch_index) == list(range(len(mine)))  # one whole run of the point, in order


@pytest.mark.realtime
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_second_signal_while_the_sweep_ends_keeps_its_line_and_its_exit_code(tiny_cnn_path, tmp_path, signal_name):
    """A job scheduler's two SIGTERMs, or Ctrl-C pressed twice: the second one, while the interrupted sweep ended
    (its line said, the interpreter shutting down), killed it by the signal (exit 143) or said a second line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", str(tiny_cnn_path), "--workers", "cpu:1x1",
                             "--batch", "1", "--rate", "50,100,150,200", "--batches", "400", "--warmup", "1", "-o",
                             str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"}, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                                                  signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / "points.csv").exists() and time.monotonic() < deadline:  # measuring its second point
        time.sleep(0.05)
    sig = getattr(signal, signal_name)
    proc.send_signal(sig)
    time.sleep(0.05)  # the interrupted sweep's line is said within it, its exit takes longer
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted: the 1 point finished so far is in"), err


def test_a_torn_performance_model_cache_is_reported_and_ignored(cli, tiny_cnn_path, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", tmp_path / "a").exit_code == 0
    cache = tmp_path / "cache" / "perfmodels"
    (file,) = list(cache.glob("*.json"))
    assert not list(cache.glob("*.tmp"))  # written through a temporary file, renamed
    file.write_text(file.read_text()[:40])  # a crash in the middle of an older, non-atomic write
    result = cli("sweep", tiny_cnn_path, *SWEEP, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.stderr
    assert "is unreadable" in result.stdout and "calibrated afresh" in result.stdout
    assert json.loads(file.read_text())["models"]  # rewritten whole by the new sweep
    # a time or a variance below zero is no measurement: not used (a simulated sweep printed -1000 ms latencies)
    sim = ("sweep", tiny_cnn_path, "--engine", "sim", "--workers", "cpu:1x1", "--batch", "1", "--rate", "50",
           "--batches", "5", "-o", tmp_path / "s", "--force")
    for key in ("mean_s", "m2"):
        cache_text = json.loads(file.read_text())
        cache_text["models"][0][key] = -1
        file.write_text(json.dumps(cache_text))
        assert_one_line_error(cli(*sim), "are unreadable", "run a real sweep")
        assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", tmp_path / "b", "--force").exit_code == 0  # rewrites it


@pytest.mark.parametrize("args, fragment", [
    (["--tolerance", "nan"], "--tolerance nan"), (["--tolerance", "-1"], "--tolerance -1"),
    (["--seeds", "0"], "--seeds 0"), (["--seeds", "1000000"], "give 1 to 1,000 METIS seeds"),
])
def test_split_numbers_are_checked(cli, workdir, costs, args, fragment):
    assert_one_line_error(cli("split", workdir / "m.onnx", "--costs", costs, *args, "-o", workdir / "p"), fragment)


def test_a_triton_port_out_of_range_is_one_line(cli, tiny_cnn_path, tmp_path):
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "triton", "--triton-port", "70000",
                              "--workers", "cpu:1x1", "-o", tmp_path / "r"), "--triton-port 70000")


def test_our_json_never_holds_nan_or_infinity():
    import json

    from staronnx_cli.errors import json_text

    text = json_text({"service_ms": float("nan"), "capacity": [1.0, float("inf")], "ok": 2})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in our JSON")) == {
        "service_ms": None, "capacity": [1.0, None], "ok": 2}


def test_ctrl_c_while_the_app_loads_is_one_line(monkeypatch, capsys):
    import sys
    import types

    from staronnx_cli.cli import entry

    class Loading(types.ModuleType):  # the app's import is interrupted (ONNX Runtime takes a second to load)
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "staronnx_cli.cli.app", Loading("staronnx_cli.cli.app"))
    with pytest.raises(SystemExit) as stop:
        entry.main()
    assert stop.value.code == 130
    assert capsys.readouterr().err == "error: interrupted while starting; nothing was written\n"


@pytest.mark.realtime
def test_ctrl_c_at_any_moment_of_start_up_never_prints_a_traceback():
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "doctor"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # wherever start-up is by then (before Python's own handler, the signal just ends it)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) <= 1
    assert proc.returncode in (130, -signal.SIGINT, 0)  # 0: doctor had already finished


def test_a_run_json_or_a_figure_that_cannot_be_written_is_one_line(cli, tiny_cnn_path, tmp_path):
    from staronnx_cli.results.rundir import RunDir
    from staronnx_cli.results.runmeta import RunMeta

    blocked = tmp_path / "run.json"
    blocked.mkdir()  # stands for a read-only or full file system: any OSError (a file cannot replace a folder)
    (blocked / "x").write_text("")
    with pytest.raises(UserError, match="cannot write .*points measured before are kept"):
        RunDir(tmp_path).write_meta(RunMeta(schema_version=3))
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    (tmp_path / "taken.png").mkdir()  # a directory where the figure should go
    assert_one_line_error(cli("plot", run, "-o", tmp_path / "taken.png"), "cannot write", "choose another -o")


def test_a_sweep_whose_arrivals_last_too_long_is_refused_before_it_starts(cli, tiny_cnn_path, tmp_path):
    from staronnx_cli.sweep.checks import SweepSettings, arrival_seconds, check_duration

    grid = SweepSettings(tiny_cnn_path, tmp_path, batch_sizes=(1, 4), rates=(10.0, 20.0), batches=5, warmup=1)
    assert arrival_seconds(grid) == 6 * (1 / 10 + 1 / 20 + 4 / 10 + 4 / 20)
    fast = SweepSettings(tiny_cnn_path, tmp_path, batch_sizes=(1,), rates=(100_000.0,), batches=50, warmup=5)
    assert arrival_seconds(fast) == pytest.approx(0.007)  # at least 2 ms of warm-up and 5 ms measured
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--batch", "100000", "--max-memory", "100", "--rate",
                              "10:100:10", "-o",
                              tmp_path / "r"), "447 h to arrive", "batch 100000 at 10 q/s", "--max-hours")
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--max-hours", "nan", "-o", tmp_path / "r"), "--max-hours")
    assert not (tmp_path / "r").exists()
    check_duration(SweepSettings(tiny_cnn_path, tmp_path, rates=(1e-6,), engine="sim"))  # virtual time: allowed
    with pytest.raises(UserError, match="--max-hours 24"):
        check_duration(SweepSettings(tiny_cnn_path, tmp_path, rates=(1e-6,), engine="real"))


def test_a_torn_run_json_is_one_line_for_resume_plot_and_trace(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    assert_one_line_error(cli("sweep", tiny_cnn_path, *SWEEP, "-o", run, "--resume"), "run.json", "not valid JSON")
    assert_one_line_error(cli("plot", run, "-o", tmp_path / "e.png"), "run.json", "not valid JSON")
    assert_one_line_error(cli("trace", run, "-o", tmp_path / "t.json"), "run.json", "not valid JSON")
    assert (run / "points.csv").exists()  # what was measured is kept


def test_costs_with_a_negative_or_infinite_figure_are_refused(cli, workdir, costs):
    import pandas as pd

    for value in ("-5", "inf"):
        frame = pd.read_csv(costs)
        frame["mean_us"] = frame["mean_us"].astype(object)
        frame.loc[1, "mean_us"] = value
        frame.to_csv(workdir / "bad.csv", index=False)
        assert_one_line_error(cli("split", workdir / "m.onnx", "--costs", workdir / "bad.csv", "-o",
                                  workdir / "p"), "bad.csv' line 3: mean_us", "profile again")
    assert not (workdir / "p").exists()


def test_an_empty_arrival_trace_is_one_line_without_numpy_warnings(cli, tiny_cnn_path, tmp_path):
    (tmp_path / "t.txt").write_text("")
    assert_one_line_error(cli("sweep", tiny_cnn_path, *SWEEP, "--arrival", f"trace:{tmp_path / 't.txt'}", "-o",
                              tmp_path / "r"), "at least two")


def test_a_file_system_that_refuses_a_write_is_one_line_for_every_command(cli, tiny_cnn_path, tmp_path, monkeypatch):
    import errno
    import os

    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    (tmp_path / "file").write_text("mine\n")
    inside_a_file = tmp_path / "file" / "out"  # ENOTDIR, for real: a path through a regular file
    assert_one_line_error(cli("trace", run, "-o", inside_a_file / "t.json"), "Not a directory", "another -o")
    assert_one_line_error(cli("zoo", "build", "tiny_cnn", "-o", inside_a_file / "z.onnx"), "Not a directory")
    assert_one_line_error(cli("report", run, "-o", inside_a_file / "r.md"), "Not a directory")

    def read_only(*args, **kwargs):  # a read-only or full file system (root ignores permissions, so simulated)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]))

    monkeypatch.setattr(os, "replace", read_only)
    assert_one_line_error(cli("profile", tiny_cnn_path, "--runs", "2", "--warmup", "0", "--no-overhead", "-o",
                              tmp_path / "c.csv"), "Read-only file system", "write elsewhere with -o")
    monkeypatch.undo()
    assert (tmp_path / "file").read_text() == "mine\n" and (run / "points.csv").exists()


def test_an_optional_part_is_installed_one_way_everywhere_with_the_pip_that_runs_staronnx(monkeypatch, tmp_path):
    """Hints said 'pip install staronnx[triton]' (no such package on PyPI), 'pip install -e .[ray]' and
    'pip install .[cuda12]' in turn; after make run, only .venv/bin/pip installs into staronnx's Python, and the
    command must run from any folder (a relative pip or '.' did not)."""
    import sys
    from pathlib import Path

    import staronnx_cli
    from staronnx_cli.errors import install_hint

    checkout = Path(staronnx_cli.__file__).resolve().parents[1]  # this repository: pip install -e put it here
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "pip").write_text("")
    monkeypatch.chdir(tmp_path / ".venv")
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    pip = tmp_path / ".venv" / "bin" / "pip"
    assert install_hint("ray") == f"{pip} install -e '{checkout}[ray]'"
    assert install_hint("cuda13", "cuda12") == f"{pip} install -e '{checkout}[cuda13]' or {pip} install -e " \
        f"'{checkout}[cuda12]'"
    monkeypatch.setattr(sys, "executable", "/nowhere/python3")
    assert install_hint("ray") == f"pip install -e '{checkout}[ray]'"


def test_a_file_gone_while_staronnx_ran_is_not_blamed_on_the_output_folder():
    """ENOENT said "choose another -o" for any missing path, an input removed during a run included."""
    import errno
    import os

    from staronnx_cli.cli.common import storage_message

    gone = OSError(errno.ENOENT, os.strerror(errno.ENOENT), "run/points.csv")
    assert storage_message(gone) == ("No such file or directory: 'run/points.csv': it, or a folder on its path, does "
                                     "not exist and cannot be made there (or was removed while staronnx ran): check "
                                     "the path, or choose another -o; files already written are kept")
    unnamed = OSError(errno.EFBIG, os.strerror(errno.EFBIG))  # a write's error names no file: no doubled colon
    assert storage_message(unnamed).startswith("File too large: the file size limit (ulimit -f) was reached")


def test_a_device_or_fifo_at_the_output_is_never_replaced_by_a_file(cli, tiny_cnn_path, tmp_path):
    """`trace -o /dev/null` as root renamed a file over /dev/null: an ordinary file for the whole machine since."""
    import os
    import stat

    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    for args in (("trace", run, "-o", fifo), ("zoo", "build", "tiny_cnn", "-o", fifo, "--force"),
                 ("plot", run, "-o", fifo.with_suffix(".png"))):
        if not fifo.with_suffix(".png").exists():
            os.mkfifo(fifo.with_suffix(".png"))
        assert_one_line_error(cli(*args), "is a FIFO, not a file", "choose another -o")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISFIFO(os.lstat(fifo.with_suffix(".png")).st_mode)
    kept = (run / "run.json").read_bytes(), (run / "batches.csv").read_bytes()
    assert_one_line_error(cli("zoo", "build", "tiny_cnn", "-o", run / "run.json", "--force"),
                          f"is the run.json of the run '{run}': write elsewhere")
    assert_one_line_error(cli("profile", tiny_cnn_path, "--runs", "2", "--warmup", "1", "-o", run / "batches.csv",
                              "--force"), "is the batches.csv of the run")
    assert ((run / "run.json").read_bytes(), (run / "batches.csv").read_bytes()) == kept


def test_run_json_is_read_as_typed_fields_with_defaults_for_older_runs(cli, tiny_cnn_path, tmp_path):
    from staronnx_cli.results.runmeta import RunMeta

    old = RunMeta.from_json({"schema_version": 2, "workers": "cpu:2x1", "calibration": []}, tmp_path / "run.json")
    assert (old.engine, old.system, old.parts, old.offload_fraction) == ("real", "staronnx", 1, None)
    assert old.get("calibration") == [] and old.get("workers") == "cpu:2x1" and old.get("nothing") is None
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "parts": "two"}))  # edited by hand
    assert_one_line_error(cli("plot", run, "-o", tmp_path / "e.png"), "run.json' is not a staronnx run.json")
    (run / "run.json").write_text(json.dumps({**meta, "calibration": "none"}))  # a list that is not one
    assert_one_line_error(cli("plot", run, "-o", tmp_path / "e.png"), "'calibration' is not a list")


def test_run_json_is_written_and_read_by_the_same_class(tmp_path):
    """What a sweep writes reads back equal; keys recorded later are absent until set; an engine's own keys are
    kept as it wrote them."""
    from dataclasses import replace

    from staronnx_cli.results.rundir import RunDir
    from staronnx_cli.results.runmeta import RunMeta

    run = RunDir(tmp_path)
    meta = RunMeta(schema_version=3, workers="cpu:1x1", max_queue_delay_ms=None).with_recorded(
        {"perfmodel": "p.json", "calibrate": False, "start_time": "now"})
    run.write_meta(meta)
    written = json.loads(run.run_json.read_text())
    assert written["max_queue_delay_ms"] is None and written["perfmodel"] == "p.json"  # always vs once recorded
    assert "auto_rates" not in written and "machine_load" not in written and written["calibrate"] is False
    assert run.read_meta() == meta
    run.update_meta(lambda m: replace(m, auto_rates=[1.0, 2.0], machine_load=[{"when": "start"}]))
    assert run.read_meta() == replace(meta, auto_rates=[1.0, 2.0], machine_load=[{"when": "start"}])
    assert json.loads(run.run_json.read_text())["auto_rates"] == [1.0, 2.0]


def test_ctrl_c_while_workers_prepare_their_sessions_stops_them_before_exiting(tiny_cnn_path, monkeypatch):
    """A Ctrl-C while ONNX Runtime builds the workers' sessions: the workers finish what they do and stop, so the
    interpreter never exits under a thread inside ONNX Runtime (that crashed it: SIGSEGV in 2 of 30 tries)."""
    import os
    import signal
    import threading
    import time

    from staronnx_cli.runtime.executors import ThreadExecutor
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.workers import parse_workers

    prepare = ThreadExecutor._prepare

    def slow_prepare(self, *args):
        time.sleep(0.5)  # the Ctrl-C lands meanwhile
        return prepare(self, *args)

    monkeypatch.setattr(ThreadExecutor, "_prepare", slow_prepare)
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()  # a real signal: it interrupts waits
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        ThreadExecutor(RealLoop(), parse_workers("cpu:1x1", [0], False), [tiny_cnn_path], 1)
    assert not [t for t in threading.enumerate() if t not in before and t.name.startswith("staronnx-")]


class Abort(RuntimeError):
    """Click's exception for a Ctrl-C while it parses the options (Typer may vendor Click: told by its name)."""


@pytest.mark.parametrize("made", [Abort(), SystemExit(130)])
def test_a_ctrl_c_while_typer_parses_the_options_is_still_one_line(monkeypatch, capsys, made):
    from staronnx_cli.cli import common, entry

    def interrupted_parse(**kwargs):
        raise made  # what Click makes of a KeyboardInterrupt while it parses (outside standalone mode: Abort)

    monkeypatch.setattr(common, "told", False)
    monkeypatch.setattr("staronnx_cli.cli.app.app", interrupted_parse)
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "error: interrupted while starting; nothing was written\n"


def test_a_usage_error_is_one_line_naming_the_commands_help():
    """Click's own errors (a value of the wrong type, an unknown option or command) were a box of four lines."""
    import subprocess
    import sys
    from pathlib import Path

    for args, line in ((["sweep", "tiny_cnn", "--batches", "abc"],
                        "error: Invalid value for '--batches': 'abc' is not a valid integer (staronnx sweep --help)"),
                       (["sweep", "--bogus"], "error: No such option: --bogus (staronnx sweep --help)"),
                       (["nosuch"], "error: No such command 'nosuch' (staronnx --help)")):
        script = Path(sys.executable).with_name("staronnx")  # as a user types it (-m names itself otherwise)
        done = subprocess.run([str(script), *args], capture_output=True, text=True)
        assert (done.returncode, done.stderr, done.stdout) == (2, line + "\n", ""), args


def test_a_path_that_is_not_utf8_is_one_line_before_anything_runs(tmp_path):
    """A file named in another encoding reached ONNX Runtime as a str with surrogates: 'incompatible constructor
    arguments', twice, after the model was loaded."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("staronnx")
    name = os.fsencode(tmp_path) + b"/t\xff.onnx"
    done = subprocess.run([os.fsencode(script), b"profile", name], capture_output=True)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode() == (f"error: '{tmp_path}/t\\xff.onnx' is not valid UTF-8: staronnx records its "
                                    "arguments in UTF-8 files; give it in UTF-8 (a file: rename it, e.g. with convmv, "
                                    "or copy it to a UTF-8 name)\n")


def test_an_interrupted_sweep_says_where_its_finished_points_are_and_only_if_there_are_some(tmp_path):
    """Ctrl-C before any point finished named a points.csv that did not exist."""
    from staronnx_cli.cli.sweep import interrupted

    assert interrupted(tmp_path) == \
        "interrupted before any point finished; start it again with the same command and --resume"
    (tmp_path / "points.csv").write_text("system,batch_size\n")
    assert interrupted(tmp_path).startswith("interrupted before any point finished")
    (tmp_path / "points.csv").write_text("system,batch_size\nstaronnx,1\n")
    assert interrupted(tmp_path) == (f"interrupted: the 1 point finished so far is in {tmp_path / 'points.csv'}; "
                                     "continue with the same command and --resume")
    (tmp_path / "points.csv").write_text("system,batch_size\nstaronnx,1\nstaronnx,2\n")
    assert interrupted(tmp_path).startswith("interrupted: the 2 points finished so far are in ")
    (tmp_path / "points.csv").write_text("model,scale,mix\nm,1,a=1 b=2\nm,1,a=1 b=2\nm,2,a=1 b=2\nm,2,a=1 b=2\n"
                                         "m,1,a=2 b=2\nm,1,a=2 b=2\n")  # a mix of two models: a row per model
    assert interrupted(tmp_path).startswith("interrupted: the 3 points finished so far are in ")


def test_a_sweep_never_writes_its_run_into_a_plan_or_among_other_files(cli, tiny_cnn_path, tmp_path):
    """-o a plan directory, or a folder of other things, took a run's files beside them (and plot read the plan as a
    run); --resume on a folder with no run started one without a word."""
    from pathlib import Path

    sim = ("--engine", "sim", "--platform", Path(__file__).parent / "data" / "golden_sim" / "platform.toml",
           "--batch", "1", "--rate", "100", "--batches", "5", "--warmup", "1")
    plan = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--offload", "0.2", "--no-verify", "-o", plan).exit_code == 0
    for extra in ((), ("--force",)):
        assert_one_line_error(cli("sweep", tiny_cnn_path, *sim, "-o", plan, *extra), "is a split plan's directory")
    assert not (plan / "points.csv").exists()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("mine\n")
    assert_one_line_error(cli("sweep", tiny_cnn_path, *sim, "-o", notes), "holds other files and no run", "--force")
    assert cli("sweep", tiny_cnn_path, *sim, "-o", notes, "--force").exit_code == 0
    assert (notes / "a.txt").read_text() == "mine\n" and (notes / "points.csv").exists()
    fresh = cli("sweep", tiny_cnn_path, *sim, "-o", tmp_path / "new", "--resume")
    assert fresh.exit_code == 0 and f"--resume: '{tmp_path / 'new'}' holds no run yet: this sweep starts one" in \
        " ".join(fresh.output.split())
    resumed = cli("sweep", tiny_cnn_path, *sim, "-o", tmp_path / "new", "--resume")
    assert resumed.exit_code == 0 and "holds no run yet" not in resumed.output


def test_a_run_whose_files_were_edited_is_one_line_naming_the_field(cli, tiny_cnn_path, tmp_path):
    """run.json and points.csv edited by hand (a record that is no record, a number written as text, a point
    without a batch size): one line naming the file and the field, never an internal error."""
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, *SWEEP, "-o", run).exit_code == 0
    meta, points = (run / "run.json").read_text(), (run / "points.csv").read_text()
    resume = ("sweep", tiny_cnn_path, *SWEEP, "-o", run, "--resume")
    for key, value, fragment in (("calibration", [1], "'calibration' holds an item that is not a record"),
                                 ("schema_version", "4", "schema_version '4' is not a whole number"),
                                 ("workers", ["cpu:1x1"], "'workers' is ['cpu:1x1'], not text"),  # a crash in report
                                 ("offload_fraction", 5, "'offload_fraction' is 5, not a fraction"),  # "500 % off"
                                 ("engine", "warp", "'engine' is 'warp', not real or sim"),
                                 ("parts", 0, "'parts' is 0, not a whole number from 1")):  # the verdict was dropped
        (run / "run.json").write_text(json.dumps(json.loads(meta) | {key: value}))
        assert_one_line_error(cli("report", run, "-o", tmp_path / "r.md", "--force"), fragment)
        assert_one_line_error(cli(*resume), fragment)
    (run / "run.json").write_text(json.dumps(json.loads(meta) | {"judging": "7"}))
    assert_one_line_error(cli(*resume), "'judging' is '7', not a whole number")
    (run / "run.json").write_text(meta)
    lines = points.splitlines(keepends=True)
    (run / "points.csv").write_text(lines[0] + lines[1].replace(",1,20.0,", ",x,20.0,", 1) + "".join(lines[2:]))
    assert ",x,20.0," in (run / "points.csv").read_text()
    assert_one_line_error(cli("plot", run, "--table"), "line 2: batch_size 'x'")
    frame = pd.read_csv(io.StringIO(points))
    assert not frame.loc[0, "congested"] and frame.loc[0, "batches"] > 0
    for latency, says in (("-5", "is not a time"), ("fast", "is not a time"), ("inf", "is not a time"),
                          ("nan", "has no value on a measured point")):  # a point that vanished from the envelope
        frame["mean_max_latency_ms"] = frame["mean_max_latency_ms"].astype(object)
        frame.loc[0, "mean_max_latency_ms"] = latency
        frame.to_csv(run / "points.csv", index=False)
        assert_one_line_error(cli("report", run, "-o", tmp_path / "r.md", "--force"),
                              "line 2: mean_max_latency_ms", says)
    (run / "points.csv").write_text(points + lines[1])  # a row pasted twice was reported as two measurements
    assert_one_line_error(cli("plot", run, "--table"), f"lines 2 and {len(lines) + 1} are the same point")
    for column, value, says in (("rate_qps", "inf", "rate_qps inf is not a finite positive number"),  # "at least
                                ("congested", "yes", "congested 'yes' is not True or False"),  # inf q/s"; read as
                                ("batches", "abc", "batches 'abc' is not a whole number"),  # uncongested; a crash
                                ("workers", "cpu:4x1", "workers 'cpu:4x1' differs from line 2's")):  # merged rows
        frame = pd.read_csv(io.StringIO(points), dtype=str, keep_default_na=False)
        frame.loc[len(frame) - 1, column] = value
        frame.to_csv(run / "points.csv", index=False)
        assert_one_line_error(cli("report", run, "-o", tmp_path / "r.md", "--force"), says)
        before = (run / "batches.csv").read_bytes()  # --resume checks every row before it changes anything
        assert_one_line_error(cli(*resume), says)
        assert (run / "batches.csv").read_bytes() == before
    (run / "points.csv").write_text(points)
    assert_one_line_error(cli(*resume, "--force"), "--resume and --force contradict")
    (run / "run.json").unlink()
    assert_one_line_error(cli(*resume), "has points.csv but no run.json")
    (run / "run.json").write_text(meta)
    batches = pd.read_csv(run / "batches.csv")
    batches["task_times"] = batches["task_times"].astype(object)
    batches.loc[batches.index[-1], "task_times"] = "0:abc-def"  # a batch of the point trace shows by default
    batches.to_csv(run / "batches.csv", index=False)
    assert_one_line_error(cli("trace", run, "-o", tmp_path / "t.json"), "unreadable task cells")
    assert_one_line_error(cli("platform", "from-run", run, "-o", tmp_path / "p.toml"), "unreadable task cells")
    original = pd.read_csv(run / "batches.csv", dtype=str, keep_default_na=False)
    for column, value, says in (("task_times", "0:nan-0.1", "unreadable task cells"),  # NaN in the trace's JSON
                                ("task_times", "", "task_times (empty) is missing on a batch that finished"),
                                ("actual_release_s", "zz", "actual_release_s 'zz' is not a finite time"),
                                ("batch_size", "zz", "batch_size 'zz' is not a whole number")):  # crashes, or
        batches = original.copy()  # "the point ran no task"
        batches[column] = value
        batches.to_csv(run / "batches.csv", index=False)
        assert_one_line_error(cli("trace", run, "-o", tmp_path / "t.json"), says)
        assert_one_line_error(cli("platform", "from-run", run, "-o", tmp_path / "p.toml"), says)
    original.drop(columns=["batch_index"]).to_csv(run / "batches.csv", index=False)
    assert_one_line_error(cli("platform", "from-run", run, "-o", tmp_path / "p.toml"),
                          "lacks the column(s) batch_index")


def test_result_rows_keep_an_older_files_columns_and_a_refused_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    import errno
    import os

    from staronnx_cli.results import schema

    older = tmp_path / "points.csv"
    older.write_text("a,b,c\n1,2,3\n")  # begun by an older staronnx with fewer columns
    schema.append_rows(older, ["a", "b", "c", "d"], [{"a": 4, "b": 5, "c": 6, "d": 7}])
    assert older.read_bytes() == b"a,b,c\n1,2,3\n4,5,6\r\n"  # its own header: the columns never shift
    before = older.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # the disk fills halfway through the rows
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(UserError, match="No space left on device"):
        schema.append_rows(older, ["a", "b", "c"], [{"a": 8, "b": 9, "c": 10}, {"a": 11, "b": 12, "c": 13}])
    monkeypatch.undo()
    assert older.read_bytes() == before  # cut back: no half row for a resume to trip on
    listed = tmp_path / "run.json"
    listed.write_text("[]")
    with pytest.raises(UserError, match="is not a staronnx run.json"):
        schema.read_run_meta(listed)


def test_a_loop_of_symbolic_links_is_said_by_every_command_that_meets_it(cli, tiny_cnn_path, tmp_path):
    """report and plot crashed (RuntimeError: Symlink loop); sweep -o said "a file is where a folder was to be
    made", platform from-run "no run.json", --mix and --platform "not found"."""
    loop = tmp_path / "l1"
    loop.symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(loop)
    for args in (("report", loop, "-o", tmp_path / "r.md"), ("plot", loop, "--table"),
                 ("platform", "from-run", loop, "-o", tmp_path / "p.toml"), ("sweep", "--mix", loop),
                 ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", loop, "-o", tmp_path / "s"),
                 ("sweep", tiny_cnn_path, *SWEEP, "-o", loop)):
        assert_one_line_error(cli(*args), "is a symbolic link that leads nowhere")


def test_a_profile_past_the_memory_there_is_is_one_line_not_a_silent_kill(cli, tiny_cnn_path, tmp_path, monkeypatch):
    """tiny_cnn at batch 65,536 grew past a 24 GiB machine and the kernel killed it without a word (exit 137): a
    ceiling under what the machine can give makes the allocation fail instead, said in one line. Here the
    machine is said to have 256 MiB to give; batch 8,192 needs more."""
    import resource

    import numpy as np

    from staronnx_cli import memlimit

    monkeypatch.setattr(memlimit, "available_bytes", lambda: 256 * 2**20)
    before = resource.getrlimit(resource.RLIMIT_DATA)
    with memlimit.memory_ceiling() as ceiling:
        assert ceiling is not None and resource.getrlimit(resource.RLIMIT_DATA)[0] == ceiling
        with pytest.raises(MemoryError):
            np.ones(2**30 // 8)  # 1 GiB, past the ceiling
    assert resource.getrlimit(resource.RLIMIT_DATA) == before  # restored
    result = cli("profile", tiny_cnn_path, "--batch", "8192", "--runs", "1", "--warmup", "0", "-o",
                 tmp_path / "c.csv")
    assert_one_line_error(result, "at batch 8192 ran out of memory (more than the", "profile a smaller --batch")
    assert not (tmp_path / "c.csv").exists()
    assert resource.getrlimit(resource.RLIMIT_DATA) == before


def test_a_performance_model_cache_that_cannot_be_written_is_one_warning_and_every_point_runs(cli, tiny_cnn_path,
                                                                                              tmp_path, monkeypatch):
    """A read-only (shared) cache: the models were saved after each point, so each sweep measured one point and
    exited 2, and each --resume one more (fuzz round 7). Now: said once, kept in memory, every point measured."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "perfmodels").write_text("a file where the folder should be")  # as root, permissions do not stop us
    monkeypatch.setenv("STARONNX_CACHE", str(cache))
    result = cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50,100", "--batches",
                 "5", "--warmup", "1", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert " ".join(result.output.split()).count("the performance-model cache") == 1
    assert len(pd.read_csv(tmp_path / "run" / "points.csv")) == 2


def test_a_cache_path_with_a_tilde_or_relative_is_made_absolute(monkeypatch, tmp_path):
    """STARONNX_CACHE='~/cache' from an env file (no shell expanded it) made a folder named '~' in the working
    directory; a relative XDG_CACHE_HOME is ignored, as the XDG spec says."""
    from staronnx_cli.cachedir import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("STARONNX_CACHE", "~/cache")
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("STARONNX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert cache_dir() == tmp_path / ".cache" / "staronnx"


def test_names_near_the_file_systems_limit_are_written(tmp_path):
    """A legal 250-byte output name was refused as 'File name too long': its temporary name beside it was longer."""
    from staronnx_cli.outputfile import ready_to_write, write_text_atomic

    path = tmp_path / ("r" * 246 + ".md")
    ready_to_write(path)
    write_text_atomic(path, "ok")
    assert path.read_text() == "ok" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_reader_that_goes_away_does_not_stop_the_sweep(tiny_cnn_path, tmp_path):
    """`staronnx sweep ... | head -1` stopped the sweep after two of nine points with exit 1 and not a word: Rich's
    console exits on a broken pipe. What is left to print goes nowhere now; every point is measured."""
    import subprocess
    import sys
    from pathlib import Path

    platform = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"
    proc = subprocess.Popen([sys.executable, "-m", "staronnx_cli", "sweep", str(tiny_cnn_path), "--engine", "sim",
                             "--platform", str(platform), "--batch", "1,2", "--rate", "100,400,900", "--batches",
                             "20", "-o", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # as head -1 does
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert len(pd.read_csv(tmp_path / "run" / "points.csv")) == 6
