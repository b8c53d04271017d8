"""Several models at once: the mix file, the merged schedule, one scheduler for every model (exact on the virtual
clock), the deadline policy's order, per-model rows, and `sweep --mix` through the CLI."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_one_line_error

from staronnx_cli.errors import UserError
from staronnx_cli.kinds import CPU
from staronnx_cli.load.schedule import BatchSchedule
from staronnx_cli.mix.point import mix_rows
from staronnx_cli.mix.schedule import MixPoint, mix_schedule, rates_at
from staronnx_cli.mix.spec import parse_mix, read_mix
from staronnx_cli.runtime.executors import ModelledExecutor
from staronnx_cli.runtime.loop import VirtualLoop
from staronnx_cli.runtime.perfmodel import PerfModel
from staronnx_cli.runtime.policies import make_policy
from staronnx_cli.runtime.scheduler import Limits, PartGraph, Scheduler
from staronnx_cli.runtime.workers import WorkerSpec

TINY = Path(__file__).resolve().parent.parent / "experiments" / "mixes" / "tiny.toml"


def two_models(target_a=None, target_b=None, priority_b=0):
    entries = [{"name": "a", "model": "tiny_cnn", "rate": 100, "batch": 1},
               {"name": "b", "model": "tiny_transformer", "rate": 100, "batch": 2, "priority": priority_b}]
    for entry, target in zip(entries, (target_a, target_b)):
        if target is not None:
            entry["target_ms"] = target
    return parse_mix({"model": entries}, Path("mix.toml"))


def run_virtual(schedule, durations, policy="dmda", workers=1, max_backlog=50):
    """Two single-part models (parts 0 and 1) on `workers` CPU workers, each part taking a constant time."""
    loop = VirtualLoop()
    specs = [WorkerSpec(f"cpu{i}", CPU, (i,)) for i in range(workers)]
    executor = ModelledExecutor(loop, specs, lambda part, kind, batch: durations[part])
    graph = PartGraph.union([PartGraph.single(), PartGraph.single()])
    scheduler = Scheduler(loop, executor, specs, make_policy(policy), PerfModel(), graph)
    return scheduler.run(schedule, Limits(max_backlog, 1e9))


def test_two_models_with_constant_times_match_the_hand_computed_schedule():
    # a: N=1 at 100 q/s (released at 0, 10, 20 ... ms), 6 ms a batch; b: N=2 at 100 q/s (queries at 0, 10 | 20, 30
    # ...: released at 10, 30, ... ms), 4 ms a batch; one worker. At 10 ms a's batch (listed first) starts, b's
    # waits until 16 and ends at 20: 20 ms from its first query. At 30 ms the same: a 6 ms, b 20 ms, every time.
    mix = two_models(target_a=10, target_b=15)
    point = MixPoint(1.0, (1, 2), rates_at(mix, 1.0, None), warmup=0, batches=4)
    planned = mix_schedule(mix, point)
    assert planned.duration_s == pytest.approx(0.08)  # b fills 4 batches of 2 at 100 q/s; a gets 8 in that time
    records, stop = run_virtual(planned.schedule, [0.006, 0.004])
    assert stop == ""
    a = [r for r in records if r.model == 0]
    b = [r for r in records if r.model == 1]
    assert len(a) == 8 and len(b) == 4
    assert [round(1000 * (r.end_s - r.first_arrival_s), 9) for r in a] == [6.0] * 8
    assert [round(1000 * (r.end_s - r.first_arrival_s), 9) for r in b] == [20.0] * 4
    assert [round(1000 * r.tasks[0].start_s, 9) for r in b] == [16.0, 36.0, 56.0, 76.0]
    points, batches = mix_rows(mix, point, (planned, records, stop), ["cpu0"], [[0.006], [0.004]],
                               {"system": "staronnx"}, [0, 1])
    assert [(p["model"], p["mean_max_latency_ms"], p["met_target"]) for p in points] == [
        ("a", 6.0, True), ("b", 20.0, False)]  # b's 20 ms misses its 15 ms target
    assert {b["model"] for b in batches} == {"a", "b"}
    assert [b["batch_index"] for b in batches if b["model"] == "b"] == [0, 1, 2, 3]  # numbered per model


def test_the_deadline_policy_runs_the_most_urgent_waiting_batch_first():
    # hand-built: a (8 ms) released at 0; b (1 ms, target 20 ms) at 2; a again at 5 (target 3 ms: deadline 8).
    # At 8 ms both wait: dmda runs them in arrival order (b, then a); deadline runs a first (8 < 22)
    schedule = BatchSchedule(1, np.array([0.0, 0.002, 0.005]), np.array([0.0, 0.002, 0.005]), np.ones(3, int),
                             np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.003, 0.022, 0.008]),
                             np.zeros(3, int))
    durations = [0.008, 0.001]
    fifo, _ = run_virtual(schedule, durations, "dmda")
    edf, _ = run_virtual(schedule, durations, "deadline")
    assert [round(1000 * r.tasks[0].start_s, 9) for r in fifo] == [0.0, 8.0, 9.0]
    assert [round(1000 * r.tasks[0].start_s, 9) for r in edf] == [0.0, 16.0, 8.0]
    # a higher priority beats an earlier deadline
    urgent = BatchSchedule(1, schedule.first_arrival_s, schedule.release_s, schedule.sizes, schedule.first_query,
                           schedule.models, schedule.deadline_s, np.array([0, 1, 0]))
    ranked, _ = run_virtual(urgent, durations, "deadline")
    assert [round(1000 * r.tasks[0].start_s, 9) for r in ranked] == [0.0, 8.0, 9.0]


def test_vary_scales_one_model_and_the_window_opens_after_every_warm_up():
    mix = two_models()
    assert rates_at(mix, 2.0, "b") == (100.0, 200.0) and rates_at(mix, 2.0, None) == (200.0, 200.0)
    planned = mix_schedule(mix, MixPoint(1.0, (1, 2), (100.0, 100.0), warmup=2, batches=3))
    assert planned.window_start_s == pytest.approx(0.04)  # b's third batch starts at its 5th query: 40 ms
    assert list(planned.schedule.release_s) == sorted(planned.schedule.release_s)


@pytest.mark.parametrize("entries, message", [
    ([], "lists no model"),
    ([{"name": "x", "model": "tiny_cnn", "rate": 1}, {"name": "x", "model": "tiny_cnn", "rate": 1}],
     "two models are named 'x'"),
    ([{"model": "tiny_cnn", "rate": 0}], "rate = 0 must be a positive number"),
    ([{"model": "tiny_cnn"}], "needs rate"),
    ([{"model": "tiny_cnn", "rate": 5, "batch": 0}], "batch = 0"),
    ([{"model": "tiny_cnn", "rate": 5, "target_ms": -1}], "target_ms = -1"),
    ([{"model": "tiny_cnn", "rate": 5, "speed": 2}], "'speed' is not a model setting"),
    ([{"model": "tiny_cnn", "rate": 5, "arrival": "burst"}], "arrival"),
])
def test_bad_mix_entries_are_one_line_naming_the_fix(entries, message):
    with pytest.raises(UserError, match=message):
        parse_mix({"model": entries}, Path("m.toml"))


def test_the_shipped_tiny_mix_reads():
    mix = read_mix(TINY)
    assert mix.names == ["cnn", "transformer"] and mix.combinations() == [(2, 1)]


@pytest.mark.realtime
def test_sweep_mix_writes_rows_per_model_and_answers(cli, tmp_path):
    out = tmp_path / "mix"
    result = cli("sweep", "--mix", TINY, "--scale", "1,2", "--batches", "4", "--warmup", "1", "-o", out)
    assert result.exit_code == 0, result.output
    points = pd.read_csv(out / "points.csv")
    assert list(points.model) == ["cnn", "transformer"] * 2 and list(points.scale) == [1, 1, 2, 2]
    assert list(points.rate_qps) == [200, 100, 400, 200] and set(points.mix) == {"cnn=2 transformer=1"}
    batches = pd.read_csv(out / "batches.csv")
    assert set(batches.model) == {"cnn", "transformer"}
    assert "verdict:" in result.output and "every model" in result.output
    figure = cli("plot", out, "--kind", "mix", "-o", tmp_path / "mix.png")
    assert figure.exit_code == 0 and (tmp_path / "mix.png").stat().st_size > 10_000
    wrong = cli("plot", out, "--kind", "envelope")
    assert wrong.exit_code == 2 and "--kind mix" in wrong.output
    plain = cli("plot", out)  # no --kind: a mix run is drawn as one (it was refused as if envelope were asked)
    assert plain.exit_code == 0 and (out / "mix.png").stat().st_size > 10_000, plain.output
    single = tmp_path / "single"  # resumed with the mix: 'measured with a different mix', of a run of no mix
    assert cli("sweep", "tiny_cnn", "--workers", "cpu:1x1", "--batch", "1", "--rate", "100", "--batches", "4",
               "--warmup", "1", "-o", single).exit_code == 0
    resumed = cli("sweep", "--mix", TINY, "--scale", "1", "--batches", "4", "--warmup", "1", "-o", single, "--resume")
    assert resumed.exit_code == 2 and "is one model's run, not a mix's" in resumed.output
    back = cli("sweep", "tiny_cnn", "--workers", "cpu:1x1", "--batch", "1", "--rate", "100", "--batches", "4",
               "--warmup", "1", "-o", out, "--resume")
    assert back.exit_code == 2 and "is a mix's run (sweep --mix)" in back.output
    poisson = tmp_path / "poisson.toml"  # a model of the mix with random arrivals over 4 batches: said before
    poisson.write_text(TINY.read_text().replace('name = "cnn"', 'name = "cnn"\narrival = "poisson"'))
    noted = cli("sweep", "--mix", poisson, "--engine", "sim", "--scale", "1", "--batches", "4", "-o", tmp_path / "p")
    assert_one_line_error(cli("sweep", "--mix", TINY, "--engine", "sim", "--scale", "1e11", "--batches", "4", "-o",
                              tmp_path / "huge"), "--scale 1e+11", "more than any machine serves")  # inf batches
    said = "cnn's arrival = \"poisson\" in poisson.toml with --batches 4: near the capacity"
    assert noted.exit_code == 0 and said in " ".join(noted.output.split())
    captured = cli("platform", "from-run", out, "-o", tmp_path / "p.toml")  # wrote one model's parts of both
    assert captured.exit_code == 2 and "is a mix" in captured.output and not (tmp_path / "p.toml").exists()
    report = cli("report", out, "-o", tmp_path / "report.md")
    assert report.exit_code == 0 and "every model meets its target" in (tmp_path / "report.md").read_text()
    # the same mix in simulation, from the performance models the real run left in this host's cache
    sim = cli("sweep", "--mix", TINY, "--engine", "sim", "--scale", "1", "--batches", "4", "-o", tmp_path / "sim")
    assert sim.exit_code == 0, sim.output
    assert list(pd.read_csv(tmp_path / "sim" / "points.csv").model) == ["cnn", "transformer"]


def test_a_mix_point_is_committed_for_every_model_or_none_and_its_combination_names_its_rows(cli, tmp_path):
    mix = tmp_path / "two.toml"
    mix.write_text(TINY.read_text().replace("batch = 2", "batch = [1, 2]"))
    out = tmp_path / "m"
    args = ("sweep", "--mix", mix, "--scale", "1", "--batches", "4", "--warmup", "1", "-o", out)
    assert cli(*args).exit_code == 0
    combos = {"cnn=1 transformer=1", "cnn=2 transformer=1"}
    points, batches = pd.read_csv(out / "points.csv"), pd.read_csv(out / "batches.csv")
    assert set(points.mix) == combos and set(batches.mix) == combos
    for combination, rows in batches.groupby("mix"):  # two combinations share model, N, rate, scale: the key tells
        assert set(rows[rows.model == "cnn"].batch_size) == {int(combination.split()[0].removeprefix("cnn="))}
    # trace shows one mix point, every model's tasks; which one must be said when there are several
    trace = tmp_path / "t.json"
    ambiguous = cli("trace", out, "-o", trace)
    assert ambiguous.exit_code == 2 and "give --mix, one of 'cnn=1 transformer=1', 'cnn=2 transformer=1'" in \
        ambiguous.stderr
    assert cli("trace", out, "--batch-size", "1", "-o", trace).exit_code == 2
    shown = cli("trace", out, "--mix", "cnn=2 transformer=1", "-o", trace)
    assert shown.exit_code == 0, shown.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    slices = [e for e in events if e.get("cat") in ("task", "warm-up")]
    assert {e["args"]["batch"] for e in slices if e["cat"] == "warm-up"} == set(
        batches[(batches.mix == "cnn=2 transformer=1") & ~batches.measured].batch_index)
    mine = batches[batches.mix == "cnn=2 transformer=1"]
    assert len(slices) == mine.task_times.notna().sum()
    assert {e["name"] for e in slices} == {"cnn: part 0", "transformer: part 0"}
    assert {e["args"]["model"] for e in slices} == {"cnn", "transformer"}
    # a crash while the last point's rows were written: the cnn row whole, the transformer row cut short; the
    # resume measures that point again and commits it once for both models, with no row of the cut one left
    text = (out / "points.csv").read_text()
    (out / "points.csv").write_text(text[: text.rstrip("\n").rfind("\n") + 20])
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    again, batches = pd.read_csv(out / "points.csv"), pd.read_csv(out / "batches.csv")
    assert sorted(zip(again.mix, again.model)) == sorted((c, m) for c in combos for m in ("cnn", "transformer"))
    last = again[again.mix == points.mix.iloc[-1]]
    assert (batches[batches.mix == points.mix.iloc[-1]].groupby("model").size() == last.set_index("model").batches
            + 1).all()  # the measured batches and the warm-up one, once


@pytest.mark.parametrize("setup, args, message", [
    ("", ["--batch", "1"], "--batch with --mix"),
    ("", ["--vary", "nobody"], "--vary nobody: the mix has no model of that name"),
    ("", ["--memory-limit", "cpu=1KiB"], "would hold up to"),
    ("", ["--memory-limit", "gpu9=1GiB"], "no such worker"),
    ("", ["--memory-limit", "cpu=1GiB,cpu=2GiB"], "--memory-limit cpu is given twice"),
    ("", ["--system", "native"], "serves one model"),
    ("unknown", [], "'no_such_model' is no file, no plan directory and no zoo model"),
    ("tight", [], "below its service time"),
    ("shape", [], "shape applies to a model: a plan's parts"),
    ("badshape", [], "shape = 128 must be INPUT:SIZES or a list of them"),
    ("wrongshape", [], "model 'cnn': --shape image:3,32: input 'image' has 3 dimension(s) after the batch"),
    ("--shape", ["--shape", "image:3,32,32"], "--shape with --mix"),
])
def test_bad_mixes_are_one_line_and_exit_2(cli, tmp_path, setup, args, message):
    mix = TINY
    if setup:
        text = TINY.read_text()
        plan = tmp_path / "plan"
        plan.mkdir()
        (plan / "plan.json").write_text("{}")
        text = {"unknown": text.replace('"tiny_cnn"', '"no_such_model"'),
                "tight": text.replace("target_ms = 10", "target_ms = 0.00001"),
                "shape": text.replace('model = "tiny_cnn"', f'model = "{plan}"\nshape = "x:1"'),
                "badshape": text.replace('model = "tiny_cnn"', 'model = "tiny_cnn"\nshape = 128'),
                "wrongshape": text.replace('model = "tiny_cnn"', 'model = "tiny_cnn"\nshape = ["image:3,32"]'),
                "--shape": text}[setup]
        mix = tmp_path / "mix.toml"
        mix.write_text(text)
    result = cli("sweep", "--mix", mix, "--scale", "1", "--batches", "2", "--warmup", "0", "-o", tmp_path / "o",
                 *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()[-1]) > 20


def test_a_mix_simulates_on_a_platform_whose_speeds_name_each_models_costs(cli, tmp_path):
    for name, zoo in (("cnn", "tiny_cnn"), ("transformer", "tiny_transformer")):
        assert cli("profile", zoo, "--device", "cpu", "--batch", "1,2", "--runs", "3", "--warmup", "1",
                   "-o", tmp_path / f"costs_{name}.csv").exit_code == 0
    platform = tmp_path / "gpu.toml"
    platform.write_text('name = "what-if"\nestimate = true\n[[workers]]\nkind = "cuda"\ncount = 1\n'
                        '[[workers]]\nkind = "cpu"\ncount = 2\ncores = 1\n'
                        '[[speeds]]\nkind = "cuda"\ncosts = "costs_{model}.csv"\nfactor = 0.1\n'
                        '[[speeds]]\nkind = "cpu:1"\ncosts = "costs_{model}.csv"\n')
    out = tmp_path / "sim"
    result = cli("sweep", "--mix", TINY, "--engine", "sim", "--platform", platform, "--policy", "deadline",
                 "--scale", "1,4", "--batches", "10", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["kind"] == "mix" and answer["answered"] and answer["combinations"][0]["largest_scale"]["scale"] == 4
    again = cli("sweep", "--mix", TINY, "--engine", "sim", "--platform", platform, "--policy", "deadline",
                "--scale", "1,4", "--batches", "10", "--json", "-o", tmp_path / "again")
    assert again.exit_code == 0  # the same settings, the same bytes: no wall clock in a simulated mix
    assert (out / "points.csv").read_bytes() == (tmp_path / "again" / "points.csv").read_bytes()
    times = tmp_path / "times.toml"
    times.write_text('[[workers]]\nkind = "cpu"\n[[times]]\npart = 0\nkind = "cpu:1"\nbatch = 1\nmean_ms = 1\n')
    refused = cli("sweep", "--mix", TINY, "--engine", "sim", "--platform", times, "-o", tmp_path / "t")
    assert refused.exit_code == 2 and "[[speeds]]" in refused.output
    (tmp_path / "costs_transformer.csv").unlink()  # its fix names a command to run: not the entry's name
    assert_one_line_error(cli("sweep", "--mix", TINY, "--engine", "sim", "--platform", platform, "-o",
                              tmp_path / "gone"), "'staronnx profile MODEL -o ",
                          "(MODEL: the model of the mix's entry 'transformer')")


def test_a_model_within_its_own_capacity_is_congested_when_the_mix_overloads_the_workers():
    # a alone needs 60 % of the worker (6 ms every 10 ms), b alone 60 % (12 ms every 20 ms): together 120 %.
    # Each is within its own capacity, so a single-model sweep would call the rise "not settled"; a mix must not
    mix = two_models(target_a=1000, target_b=1000)
    point = MixPoint(1.0, (1, 2), (100.0, 100.0), warmup=0, batches=60)
    planned = mix_schedule(mix, point)
    records, stop = run_virtual(planned.schedule, [0.006, 0.012], max_backlog=10**6)
    assert stop == ""
    points, _ = mix_rows(mix, point, (planned, records, stop), ["cpu0"], [[0.006], [0.012]],
                         {"system": "staronnx"}, [0, 1])
    assert all(p["congested"] for p in points), [p["reason"] for p in points]
    assert not any(p["met_target"] for p in points)


def test_busy_time_counts_overlapping_tasks_once():
    from staronnx_cli.metrics.points import utilisation

    assert utilisation([[(0.0, 2.0), (1.0, 3.0)], [(0.5, 1.0)]], (0.0, 4.0)) == [0.75, 0.125]


def test_static_policy_places_each_models_parts_by_their_own_index():
    from staronnx_cli.runtime.policies import ReadyTask, WorkerState

    policy = make_policy("static:cuda,cpu")
    policy.local_part = [0, 1, 0]  # model 0 has parts 0, 1; model 1's part 0 is the mix's part 2
    workers = [WorkerState(0, "cuda", "cuda", "cuda:0", True, 0.0), WorkerState(1, "cpu", "cpu:1", "host", True, 0.0)]
    assert [policy.choose(ReadyTask(0, part, 1, {}), workers, 0.0, PerfModel()) for part in (0, 1, 2)] == [0, 1, 0]


def test_a_mix_run_edited_by_hand_is_one_line_not_a_key_error_or_a_dropped_model(cli, tmp_path):
    """report failed on KeyError 'ghost ms' (a model the mix does not name); a point missing a model's row said
    every model met its target up to that scale, the missing one unsaid; a scale of -1 was an answer."""
    out = tmp_path / "mix"
    assert cli("sweep", "--mix", TINY, "--scale", "1,2", "--batches", "4", "--warmup", "1", "-o", out).exit_code == 0
    clean = (out / "points.csv").read_text()
    points = pd.read_csv(out / "points.csv")
    for edit, fragment in ((lambda p: p.assign(model=["ghost"] + list(p.model[1:])), "has rows of model 'ghost'"),
                           (lambda p: p.drop(index=p.index[-1]), "has no row of model"),
                           (lambda p: p.assign(scale=[-1.0] + list(p.scale[1:])), "scale -1.0 is not a positive")):
        edit(points).to_csv(out / "points.csv", index=False)
        assert_one_line_error(cli("report", out, "-o", tmp_path / "r.md"), fragment)
        assert_one_line_error(cli("plot", out, "-o", tmp_path / "m.png"), fragment)
    (out / "points.csv").write_text(clean)
    assert cli("report", out, "-o", tmp_path / "r.md").exit_code == 0


def test_a_one_model_mix_is_bounded_as_a_single_sweep_of_its_stream_and_random_bursts_are_allowed():
    """A mix summed the models' fixed-rate backlog bounds: a Poisson model's normal bursts stopped the point as
    congested where a single sweep of the same stream allows them."""
    from staronnx_cli.mix.point import mix_limits
    from staronnx_cli.sweep.point import PointSpec, limits_for

    services = [[0.008, 0.008]]  # two workers, 8 ms each: 80 % load at 200 q/s
    for arrival in ("fixed", "poisson"):
        mix = parse_mix({"model": [{"model": "tiny_cnn", "rate": 200, "batch": 1, "arrival": arrival}]},
                        Path("mix.toml"))
        point = MixPoint(1.0, (1,), (200.0,), warmup=3, batches=60, seed=4)
        planned = mix_schedule(mix, point)
        single = limits_for(planned.schedule, PointSpec(1, 200.0, 3, 60, arrival), 2, services[0])
        assert mix_limits(mix, point, planned, services, 2).max_backlog == single.max_backlog
        if arrival == "fixed":
            fixed = single.max_backlog
    assert single.max_backlog > fixed  # the Poisson stream's bursts, allowed


def test_a_mix_point_at_a_very_high_rate_spans_a_single_sweeps_least_warm_up_and_measurement():
    """At 100,000 q/s, 2 + 3 batches of a model are 50 us: too short for a trend to show (a single sweep measures
    at least 5 ms after at least 2 ms of warm-up)."""
    from staronnx_cli.sweep.point import MEASURE_S, WARMUP_S

    mix = two_models()
    planned = mix_schedule(mix, MixPoint(1.0, (1, 2), (100_000.0, 100_000.0), warmup=2, batches=3))
    assert planned.duration_s >= WARMUP_S + MEASURE_S - 1e-5  # the last batch arrives within 10 us of the span
    assert planned.window_start_s >= WARMUP_S - 1e-5


def test_a_mix_missing_its_targets_only_at_low_scales_answers_from_the_first_scale_that_meets_them():
    """N=4 of cnn misses its 3 ms target at scales 0.5 and 1 (its batches fill too slowly at a low rate) and meets
    it from 1.5 to 3: the verdict said 'no scale measured where every model meets its target' (and exit 3)."""
    import math

    from staronnx_cli.analysis.mix import combinations

    rows = []
    for scale, latency in ((0.5, 6.46), (1.0, 4.1), (1.5, 2.9), (2.0, 2.4), (2.5, 2.2), (3.0, 2.1), (3.5, None)):
        rows.append({"mix": "cnn=4", "scale": scale, "model": "cnn", "rate_qps": 1000 * scale,
                     "congested": latency is None, "mean_max_latency_ms": latency if latency else math.nan,
                     "latency_target_ms": 3.0, "reason": "" if latency else "backlog"})
    (answer,) = combinations(pd.DataFrame(rows))
    assert (answer["largest_scale"]["from_scale"], answer["largest_scale"]["scale"]) == (1.5, 3.0)
    assert answer["below"] == {"scale": 0.5, "models": [{"model": "cnn", "why": "6.46 ms > target 3 ms"}]}
    assert answer["first_failure"]["scale"] == 3.5
    congested_first = pd.DataFrame([{**rows[0], "congested": True, "mean_max_latency_ms": math.nan}] + rows[1:])
    (answer,) = combinations(congested_first)  # a congested low scale still ends the search there
    assert answer["largest_scale"] is None and answer["first_failure"]["scale"] == 0.5
