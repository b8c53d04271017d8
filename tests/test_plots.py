"""plot, report and trace: the answer computed exactly, every kind drawn from committed fixtures, bad input."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.analysis import envelope as env
from staronnx_cli.results.read import read_run

RUNS = Path(__file__).parent / "data" / "runs"


def points(rows):
    frame = pd.DataFrame(rows, columns=["batch_size", "rate_qps", "batches", "mean_max_latency_ms",
                                        "std_max_latency_ms", "congested"])
    return frame


def test_envelope_and_rho_max_on_hand_made_points():
    p = points([
        (1, 10, 50, 5.0, 0.1, False), (2, 10, 50, 105.0, 1.0, False),
        (1, 20, 50, 6.0, 0.1, False), (2, 20, 50, 56.0, 1.0, False),
        (1, 40, 20, None, None, True), (2, 40, 50, 31.0, 1.0, False),
        (2, 80, 50, 30.0, 1.0, False), (4, 80, 50, 30.0, 1.0, False),  # a tie goes to the smaller N
        (4, 160, 0, None, None, False),  # failed: no batch measured
    ])
    best = env.envelope(p)
    assert best.rate_qps.tolist() == [10, 20, 40, 80] and best.batch_size.tolist() == [1, 1, 2, 2]
    assert best.mean_max_latency_ms.tolist() == [5.0, 6.0, 31.0, 30.0]
    assert env.rho_max(p) == {1: 20.0, 2: 80.0, 4: 80.0}
    assert env.first_congested(p) == {1: 40.0, 2: None, 4: None}
    assert env.system_rho_max(p) == 80.0


def test_the_envelope_takes_the_fastest_batch_size_not_the_smallest_and_keeps_rates_a_batch_size_failed_at():
    # at 40 q/s N=4 (20 ms) beats N=2 (31 ms): the least latency, whatever the batch size
    p = points([(1, 10, 50, 5.0, 0.1, False), (2, 40, 50, 31.0, 1.0, False), (4, 40, 50, 20.0, 1.0, False)])
    assert env.envelope(p).batch_size.tolist() == [1, 4]
    # N=1 congested at 10 q/s (a disturbance) but fine at 20: it ran at 10, so it is no unmeasured better one there,
    # and N=2's 15 ms stays the answer at 10 q/s
    p = points([(1, 10, 50, None, None, True), (1, 20, 50, 4.0, 0.1, False), (2, 10, 50, 15.0, 0.5, False)])
    assert env.envelope(p).values.tolist() == [[10, 2, 15.0, 0.5], [20, 1, 4.0, 0.1]]


def test_the_fixture_envelope_matches_the_arithmetic_of_its_virtual_machine():
    run = read_run(RUNS / "two_workers")  # S(N) = 4 + 3N ms on two workers
    best = env.envelope(run.points)
    assert best.batch_size.tolist() == [1, 1, 2]  # at 400 q/s N=1 congests (2 workers / 7 ms = 286 q/s)
    assert best.mean_max_latency_ms.tolist() == pytest.approx([7.0, 7.0, 12.5])  # (N-1)/rho + S(N)
    assert env.rho_max(run.points) == {1: 250.0, 2: 400.0, 4: 400.0}
    ideal = env.ideal_curve(run.points, 2)
    assert ideal[ideal.rate_qps == 400.0].ideal_ms.iloc[0] == pytest.approx(12.5)


@pytest.mark.parametrize("kind, runs, suffix", [
    ("envelope", ["two_workers"], ".png"), ("batches", ["one_worker"], ".svg"),
    ("compare", ["two_workers", "one_worker", "split"], ".pdf"), ("splits", ["two_workers", "split"], ".png"),
    ("timeline", ["split"], ".png"),
])
def test_every_kind_draws_a_file(cli, tmp_path, kind, runs, suffix):
    output = tmp_path / f"figure{suffix}"
    result = cli("plot", *[RUNS / r for r in runs], "--kind", kind, "-o", output)
    assert result.exit_code == 0, result.stderr
    data = output.read_bytes()
    assert len(data) > 5000
    assert data.startswith({".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix])


def test_the_timeline_shades_the_warm_up_up_to_the_first_measured_release():
    from staronnx_cli.plots.figures import timeline_figure

    run = read_run(RUNS / "split")
    fig = timeline_figure(run, 2, 400.0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "warm-up (not measured)" in labels
    point = run.batches[(run.batches.batch_size == 2) & (run.batches.rate_qps == 400)]
    first_measured_ms = 1000 * point[point.measured].actual_release_s.min()
    spans = [p.get_x() + p.get_width() for p in ax.patches if type(p).__name__ == "Rectangle"]
    assert any(abs(end - first_measured_ms) < 1e-9 for end in spans)


def test_a_worker_that_ran_no_task_of_the_point_still_has_its_track(cli, tmp_path):
    """On cpu:2x1 with every batch on cpu0 the timeline and the trace showed only cpu0: an idle worker looked like
    one that never started."""
    from staronnx_cli.plots.figures import timeline_figure

    run_dir = tmp_path / "idle"
    shutil.copytree(RUNS / "split", run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "workers": "cpu:3x1",
                                                  "worker_cores": {"cpu0": [0], "cpu1": [1], "cpu2": [2]}}))
    ax = timeline_figure(read_run(run_dir), 2, 400.0).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cpu0", "cpu1", "cpu2"]
    assert cli("trace", run_dir, "--batch-size", "2", "--rate", "400").exit_code == 0  # beside the run's figures
    events = json.loads((run_dir / "trace.json").read_text())["traceEvents"]
    (run_dir / "trace.json").write_text("mine\n")  # not a trace: the default output is not the user's -o to blame
    from conftest import assert_one_line_error

    assert_one_line_error(cli("trace", run_dir, "--batch-size", "2", "--rate", "400"),
                          "the default output", "holds a file that is not a trace", "or choose an -o")
    assert (run_dir / "trace.json").read_text() == "mine\n"
    assert_one_line_error(cli("trace", run_dir, "-o", tmp_path / "t.png"), "a trace is JSON", f"{tmp_path}/t.json")
    assert not (tmp_path / "t.png").exists()
    names = [e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"]
    assert names == ["load generator", "cpu0", "cpu1", "cpu2"]


def test_parts_of_a_run_directory_point_to_its_plan_not_to_overwriting_the_run(cli, tmp_path):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("plot", RUNS / "split", "--kind", "parts"), "is a sweep's run directory, not a plan",
                          "'staronnx split MODEL -o PLAN_DIR'")
    (tmp_path / "costs.csv").write_text("node,op_type\n")
    assert_one_line_error(cli("plot", tmp_path / "costs.csv", "--kind", "parts"), "is not a plan",
                          "a costs file draws with --kind nodes")


def test_options_a_kind_does_not_use_are_refused_not_ignored(cli, tmp_path):
    """--table -o FILE printed the tables and wrote no file; --batch-size with the envelope and --format without
    --table were dropped without a word."""
    from conftest import assert_one_line_error

    run = RUNS / "two_workers"
    assert_one_line_error(cli("plot", run, "--table", "-o", tmp_path / "t.md"), "-o does not apply to --table",
                          "--table --format md > t.md")
    assert_one_line_error(cli("plot", run, "--batch-size", "2", "-o", tmp_path / "e.png"),
                          "--batch-size applies to --kind timeline")
    assert_one_line_error(cli("plot", run, "--format", "md", "-o", tmp_path / "e.png"),
                          "--format md applies to --table")
    assert cli("plot", run, "--kind", "timeline", "--batch-size", "2", "-o", tmp_path / "t.png").exit_code == 0


def test_a_single_point_draws_and_an_all_congested_run_says_why(cli, tmp_path):
    single = tmp_path / "single"
    shutil.copytree(RUNS / "two_workers", single)
    p = pd.read_csv(single / "points.csv")
    p.iloc[[0]].to_csv(single / "points.csv", index=False)
    assert cli("plot", single, "--kind", "envelope", "-o", tmp_path / "one.png").exit_code == 0
    assert cli("plot", single, "--kind", "batches", "-o", tmp_path / "two.png").exit_code == 0
    jammed = tmp_path / "jammed"
    shutil.copytree(RUNS / "two_workers", jammed)
    p = pd.read_csv(jammed / "points.csv")
    p["congested"] = True
    p.to_csv(jammed / "points.csv", index=False)
    for kind in ("envelope", "batches", "compare"):
        assert_one_line_error(cli("plot", jammed, "--kind", kind, "-o", tmp_path / "x.png"), "lower rates")


def test_plot_bad_input(cli, tmp_path):
    assert_one_line_error(cli("plot", tmp_path, "-o", tmp_path / "x.png"), "not a run directory")
    lacking = tmp_path / "lacking"  # a points.csv without its congested column: no verdict can be drawn from it
    shutil.copytree(RUNS / "two_workers", lacking)
    pd.read_csv(lacking / "points.csv").drop(columns="congested").to_csv(lacking / "points.csv", index=False)
    assert_one_line_error(cli("plot", lacking, "-o", tmp_path / "x.png"), "lacks the column(s) congested")
    broken = tmp_path / "broken"
    shutil.copytree(RUNS / "one_worker", broken)
    pd.read_csv(broken / "points.csv").drop(columns=["mean_max_latency_ms"]).to_csv(broken / "points.csv")
    assert_one_line_error(cli("plot", broken, "-o", tmp_path / "x.png"), "mean_max_latency_ms")
    newer = tmp_path / "newer"
    shutil.copytree(RUNS / "one_worker", newer)
    meta = json.loads((newer / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    assert_one_line_error(cli("plot", newer, "-o", tmp_path / "x.png"), "upgrade staronnx")
    other = tmp_path / "other"
    shutil.copytree(RUNS / "split", other)
    meta = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**meta, "model_sha256": "ef" * 32, "model_name": "other"}))
    assert_one_line_error(cli("plot", RUNS / "two_workers", other, "--kind", "splits", "-o", tmp_path / "x.png"),
                          "different models")
    assert_one_line_error(cli("plot", RUNS / "split", "--kind", "pie", "-o", tmp_path / "x.png"), "--kind 'pie'")
    assert_one_line_error(cli("plot", RUNS / "split", "-o", tmp_path / "x.gif"), ".png")
    assert_one_line_error(cli("plot", RUNS / "split", RUNS / "one_worker", "--kind", "envelope"), "--kind compare")


def test_plot_table_prints_the_answer_in_markdown(cli):
    result = cli("plot", RUNS / "two_workers", "--table", "--format", "md")
    assert result.exit_code == 0, result.stderr
    assert ("| rate q/s | best N | mean max-latency ms | std ms | ideal ms | measured/ideal | p99 ms | served q/s |"
            in result.stdout)
    assert "| 400 | 2 | 12.50 | 0.00 | 12.50 | 1.000 |" in result.stdout
    assert "| 1 | 250 | 400 | 7.00 |" in result.stdout  # N, rho_max, first congested, S(N)


def test_report_holds_figures_tables_and_metadata(cli, tmp_path):
    output = tmp_path / "report.md"
    result = cli("report", RUNS / "two_workers", RUNS / "split", "-o", output)
    assert result.exit_code == 0, result.stderr
    text = output.read_text()
    for image in [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]:
        assert (tmp_path / image).stat().st_size > 5000
    assert "## Comparison" in text and "| model_sha256 |" in text and "rho_max" in text
    assert "| fill + wait + run ms |" not in text  # runs before schema 5: no empty column
    assert "| staronnx cpu:2x1 dmda (sim) | 400 |" in text  # congested above it: rho_max known
    assert_one_line_error(cli("report", RUNS / "two_workers", "-o", output), "--force")
    assert_one_line_error(cli("report", RUNS / "split", RUNS / "split", "-o", output, "--force"), "is given twice")
    (tmp_path / "dir.md").mkdir()  # a folder: '--force' was asked for, then refused as a folder
    assert_one_line_error(cli("report", RUNS / "split", "-o", tmp_path / "dir.md"), "is a folder", "dir.md/report.md")
    spaced = tmp_path / "whole (v2).md"  # a bare link destination ends at its first space: no figure showed
    assert cli("report", RUNS / "split", "-o", spaced).exit_code == 0
    links = [line for line in spaced.read_text().splitlines() if line.startswith("![")]
    assert links and all(line.endswith(".png>)") and "](<whole (v2)_files/" in line for line in links)


def test_trace_is_valid_trace_event_json(cli, tmp_path):
    output = tmp_path / "trace.json"
    result = cli("trace", RUNS / "split", "--batch-size", "2", "--rate", "400", "-o", output)
    assert result.exit_code == 0, result.stderr
    events = json.loads(output.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    batches = pd.read_csv(RUNS / "split" / "batches.csv")
    released = batches[(batches.batch_size == 2) & (batches.rate_qps == 400)]
    assert len(slices) == 2 * len(released)  # two parts per batch
    for e in slices:
        assert {"ph", "ts", "dur", "pid", "tid", "name"} <= set(e) and e["dur"] >= 0
        assert isinstance(e["ts"], (int, float)) and isinstance(e["tid"], int)
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"load generator", "cpu0", "cpu1"}
    assert sum(e["ph"] == "i" for e in events) == len(released)
    # the warm-up batches (0 and 1 here) are told apart from the measured ones
    warm = set(released.batch_index[~released.measured])
    assert warm == {0, 1}
    assert {e["args"]["batch"] for e in slices if e["cat"] == "warm-up"} == warm
    assert all(e["args"]["measured"] == (e["args"]["batch"] not in warm) for e in slices)
    assert sorted(e["name"] for e in events if e["ph"] == "i" and e["name"].endswith("(warm-up)")) == [
        "release batch 0 (warm-up)", "release batch 1 (warm-up)"]
    assert_one_line_error(cli("trace", RUNS / "split", "--batch-size", "3", "--rate", "400", "-o", output),
                          "no point N=3")


def _overlaps(fig, texts) -> list[tuple[str, str]]:
    fig.canvas.draw()
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts if t.get_text()]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def test_figure_labels_never_collide_and_legends_list_only_what_is_drawn():
    from staronnx_cli.plots import figures

    whole, split, one = (read_run(RUNS / name) for name in ("two_workers", "split", "one_worker"))
    fig = figures.envelope_figure(whole)
    ax = fig.axes[0]
    assert _overlaps(fig, ax.texts) == []
    assert sorted(t.get_text() for t in ax.texts if t.get_text().startswith("N=")) == ["N=1", "N=2", "N=4"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "best N at each rate", "ideal (N-1)/rho + S(N) of that N", "rho_max 400 q/s (saturation)", "each N (grey)"]
    fig = figures.batches_figure(whole)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["N = 1", "N = 2", "N = 4", "N = 1 congested from 400 q/s", "N = 2, 4 congested from 550 q/s"]
    assert len(fig.axes[0].texts) == 0  # nothing written on the lines themselves
    jammed = read_run(RUNS / "one_worker")
    jammed.points = jammed.points.assign(congested=True)
    fig = figures.compare_figure([whole, split, jammed], ["whole " * 20, "split", "jammed"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(legend) == 2 and all(max(len(line) for line in label.splitlines()) <= 60 for label in legend)
    assert "not drawn (no uncongested point): jammed" in fig.axes[0].get_title()
    assert {line.get_color() for line in fig.axes[0].lines if line.get_linestyle() == ":"} == {"#555555"}  # shared


def test_rich_tables_fold_on_a_narrow_terminal_and_never_cut():
    from rich.console import Console

    from staronnx_cli.plots.tables import rich_table

    rows = [{"system": "native", "rho_max_over_native": None, "efficiency_of_the_workers": 0.1 + 0.2,
             "latency": float("nan"), "workers": "cuda:0x2,cpu:1x14"}]
    console = Console(width=50, record=True)
    console.print(rich_table(rows, "systems"))
    console.print(rich_table([{"rate q/s": "500", "setup": "whole model, --workers cpu:2x1, --policy dmda, N=1",
                               "predicted ms": "0.16", "measured ms": "congested", "rho_max q/s": "2000"}],
                             "with a text column", text_columns=("setup",)))
    text = console.export_text()
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in text.splitlines() if line.startswith(("┏", "┃", "│", "└")))
    assert "…" not in text and "..." not in text and "nan" not in text and "None" not in text
    letters = sorted(ch for ch in text if ch.isalnum() or ch in "_.:,")  # every character is still there
    for value in ("efficiency_of_the_workers", "0.3", "cuda:0x2,cpu:1x14", "rho_max_over_native", "systems"):
        for ch in set(value):
            assert letters.count(ch) >= value.count(ch), (value, ch)


def test_the_envelope_leaves_out_rates_where_an_unmeasured_batch_size_would_have_done_better():
    """--rate auto refines N=4's saturation at 45 q/s, where N=1 (measured at 40 and 50, uncongested, 30 and 31 ms)
    did not run: N=4's 181 ms is not the best there. At 55 q/s (N=1's probe) N=4, between 200 and 220 ms, would
    not have beaten N=1: N=1 stays. At 70 q/s N=1 is congested (from 60): N=4 is the best."""
    p = points([
        (1, 40, 30, 30.0, 1.0, False), (4, 40, 30, 180.0, 5.0, False), (4, 45, 30, 181.0, 5.0, False),
        (1, 50, 30, 31.0, 1.0, False), (4, 50, 30, 200.0, 5.0, False), (1, 55, 30, 40.0, 1.0, False),
        (1, 60, 10, None, None, True), (4, 70, 30, 220.0, 5.0, False), (4, 80, 10, None, None, True),
    ])
    assert env.unmeasured_better(p, 45, 181.0) and not env.unmeasured_better(p, 55, 40.0)
    best = env.envelope(p)
    assert best.rate_qps.tolist() == [40, 50, 55, 70] and best.batch_size.tolist() == [1, 1, 1, 4]
    # a disturbance congested N=4 at 30 q/s and its probes went below N=1's grid: at 20 q/s N=1 never ran, and would
    # have waited for no batch to fill (its 30 ms at 40 q/s, at most)
    low = points([(1, 40, 30, 30.0, 1.0, False), (4, 20, 30, 170.0, 5.0, False), (4, 30, 10, None, None, True)])
    assert env.unmeasured_better(low, 20, 170.0) and env.envelope(low).rate_qps.tolist() == [40]
    # N=2 below its grid waits longer for its second query: (2 - 1) x (1/20 - 1/40) s = 25 ms more than at 40 q/s
    assert not env.unmeasured_better(points([(2, 40, 30, 150.0, 5.0, False), (4, 20, 30, 170.0, 5.0, False)]), 20,
                                     170.0)  # 175 ms: N=4's 170 stays the best at 20 q/s
    assert env.unmeasured_better(points([(2, 40, 30, 140.0, 5.0, False), (4, 20, 30, 170.0, 5.0, False)]), 20,
                                 170.0)  # 165 ms


def test_a_run_with_a_point_stopped_on_its_backlog_is_read_by_trace_timeline_and_platform(cli, tiny_cnn_path,
                                                                                           tmp_path):
    """Batches a backlog stop left unstarted have empty task cells: read as '', they were taken for unreadable
    ones, and platform from-run, trace and the timeline refused every such run (most --rate auto runs)."""
    run = tmp_path / "run"
    assert cli("sweep", tiny_cnn_path, "--workers", "cpu:1x1", "--batch", "1", "--rate", "50,100000", "--batches",
               "20", "--warmup", "2", "-o", run).exit_code == 0
    batches = pd.read_csv(run / "batches.csv")
    assert batches.placement.isna().any()  # the 100,000 q/s point stopped with batches never started
    # an uncongested point ended early by the judge leaves them too (its last batch here, as it would be)
    last = batches[batches.rate_qps == 50].index[-1]
    batches.loc[last, ["end_s", "first_query_latency_ms", "placement", "task_times"]] = None
    batches.to_csv(run / "batches.csv", index=False)
    assert cli("platform", "from-run", run, "-o", tmp_path / "p.toml").exit_code == 0
    assert cli("trace", run, "-o", tmp_path / "t.json").exit_code == 0
    assert cli("plot", run, "--kind", "timeline", "-o", tmp_path / "t.png").exit_code == 0


def test_nine_runs_compared_are_nine_styles():
    """Past 8 runs the colours came round again: the first and the ninth were both black, in curves and legend."""
    from staronnx_cli.plots.figures import run_style

    styles = [tuple(sorted(run_style(i).items())) for i in range(32)]
    assert len(set(styles)) == 32 and run_style(0)["color"] == run_style(8)["color"]
    assert run_style(0)["linestyle"] != run_style(8)["linestyle"]
