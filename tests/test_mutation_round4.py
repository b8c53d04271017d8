"""Round 4 of mutation testing: the input checks and verdict rules added in the two days before it (result files,
plans, costs, the judge, resume and campaign checks, advise's curves and notes, traces, the entry point), each rule
held by a tiny hand-made input and an exact outcome (each test names what it holds and why it matters)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from staronnx_cli.errors import UserError

# -- results: points.csv ----------------------------------------------------------------------------------------------

POINT_HEADER = ("system,engine,policy,workers,batch_size,rate_qps,batches,mean_max_latency_ms,std_max_latency_ms,"
                "p50_latency_ms,p99_latency_ms,max_latency_ms,achieved_qps,congested")


def points_file(tmp_path: Path, rows: list[str], name: str = "points.csv") -> Path:
    """A points.csv of the required columns and `rows` (each from `prow`)."""
    path = tmp_path / name
    path.write_text(POINT_HEADER + "\n" + "".join(r + "\n" for r in rows))
    return path


def prow(batch="1", rate="10", batches="10", mean="5.0", std="0.1", congested="False", workers="cpu:1x1") -> str:
    return f"staronnx,real,dmda,{workers},{batch},{rate},{batches},{mean},{std},5,6,7,10,{congested}"


def refusal(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def test_points_rows_are_checked_for_finite_whole_numbers_and_times_from_0(tmp_path):
    """A rate of inf (read as 'at least inf q/s'), a batch size of 1.5, a standard deviation of inf or a latency
    given on a congested row as -1 are edits: each refused naming its line; a latency of exactly 0 ms, a measured
    latency missing where the point is congested or measured no batch, are what sweeps write and are read."""
    from staronnx_cli.results.read import read_points

    ok = read_points(points_file(tmp_path, [prow(mean="0"), prow(batch="2", mean="", congested="True"),
                                            prow(batch="4", batches="0", mean="")], "ok.csv"))
    assert ok.mean_max_latency_ms.iloc[0] == 0.0 and math.isnan(ok.mean_max_latency_ms.iloc[1])
    assert ok.batch_size.dtype.kind == "i" and ok.rate_qps.dtype.kind == "f"  # whole sizes, rates as floats
    for row, says in ((prow(rate="inf"), "line 3: rate_qps inf is not a finite positive number"),
                      (prow(batch="1.5"), "line 3: batch_size 1.5 is not a whole positive number"),
                      (prow(std="inf"), "line 3: std_max_latency_ms inf is not a time"),
                      (prow(mean="-1", congested="True"), "line 3: mean_max_latency_ms -1.0 is not a time"),
                      (prow(congested=""), "line 3: congested (empty) is not True or False"),
                      (prow(congested=" "), "line 3: congested (empty) is not True or False"),
                      (prow(mean="", batches="3"), "line 3: mean_max_latency_ms (empty) has no value on a measured "
                                                   "point that is not congested")):
        message = refusal(lambda row=row: read_points(points_file(tmp_path, [prow(batch="8"), row])))
        assert says in message and "(edited?): fix or remove that row, or sweep again" in message, message


def test_one_layout_per_run_reads_cpu_1_as_cpu_1x1_and_names_the_first_row_that_differs(tmp_path):
    """workers 'cpu:1' and 'cpu:1x1' are one layout (a resume wrote the short spelling); a row of another layout is
    named by its own line against line 2's, and the refusal says how such a row comes (a merged file)."""
    from staronnx_cli.results.read import read_points

    same = read_points(points_file(tmp_path, [prow(), prow(batch="2", workers="cpu:1")], "same.csv"))
    assert len(same) == 2
    message = refusal(lambda: read_points(points_file(tmp_path, [prow(), prow(batch="2"),
                                                                 prow(batch="4", workers="cpu:2x1")])))
    assert "line 4: workers 'cpu:2x1' differs from line 2's 'cpu:1x1' (one run has one layout: merged or " \
           "edited?)" in message, message


def test_a_header_alone_is_a_run_of_no_points_and_a_repeated_point_names_both_lines(tmp_path):
    """A points.csv of its header alone (a sweep stopped before its first point) reads as no points, not an
    IndexError; the same (N, rate) twice names the two lines and the point, so the user knows which to remove."""
    from staronnx_cli.results.read import read_points

    assert read_points(points_file(tmp_path, [], "empty.csv")).empty
    message = refusal(lambda: read_points(points_file(tmp_path, [prow(), prow(batch="2"), prow(rate="10.0")])))
    assert "lines 2 and 4 are the same point (batch size 1 at 10 q/s; edited or merged?)" in message, message
    sweep_written = tmp_path / "v4.csv"  # a sweep's own file: the mix columns there, empty on a model's points
    sweep_written.write_text(POINT_HEADER + ",model,scale,mix\n" + "".join(f"{prow()},,,\n" for _ in range(2)))
    assert "lines 2 and 3 are the same point" in refusal(lambda: read_points(sweep_written))


def test_a_repeated_mix_point_names_its_model(tmp_path):
    """In a mix, a point is also its model and scale: the refusal names the model of the repeated row."""
    from staronnx_cli.results.read import _refuse_repeated_points

    rows = pd.DataFrame({"batch_size": [1, 1], "rate_qps": [10.0, 10.0], "model": ["resnet", "resnet"],
                         "scale": [1.0, 1.0], "mix": ["a=1", "a=1"]})
    message = refusal(lambda: _refuse_repeated_points(rows, Path("p.csv")))
    assert "lines 2 and 3 are the same point (batch size 1 at 10 q/s, resnet;" in message, message


# -- results: batches.csv and its task cells --------------------------------------------------------------------------

BATCH_HEADER = ("system,batch_size,rate_qps,batch_index,measured,first_arrival_s,scheduled_release_s,actual_release_s,"
                "end_s,first_query_latency_ms,placement,task_times,error,transfer_times")


def brow(batch="1", rate="10", index="0", release="0.1", end="0.2", first="1.0", placement="0:cpu0",
         times="0:0.1000000-0.2000000", error="", transfers="") -> str:
    return f"staronnx,{batch},{rate},{index},True,0.1,0.1,{release},{end},{first},{placement},{times},{error}," \
           f"{transfers}"


def batches_file(tmp_path: Path, rows: list[str], name: str = "batches.csv") -> Path:
    path = tmp_path / name
    path.write_text(BATCH_HEADER + "\n" + "".join(r + "\n" for r in rows))
    return path


def test_batch_rows_are_checked_and_unstarted_or_failed_batches_may_leave_their_task_cells_empty(tmp_path):
    """batches.csv: batch 0 is a batch; a batch that never ended (no end, or an infinite one) or that failed has no
    task cells, read as '' (not 'nan'); a finished one without them, a size of 0 or 1.5, a rate of 0 or inf, an
    infinite release, a first-query latency that is text: each is one line naming its row and column."""
    from staronnx_cli.results.read import read_batches

    ok = read_batches(batches_file(tmp_path, [brow(), brow(index="1", end="", first="", placement="", times=""),
                                              brow(index="2", end="inf", placement="", times=""),
                                              brow(index="3", placement="", times="", error="boom")], "ok.csv"))
    assert ok.batch_index.tolist() == [0, 1, 2, 3] and ok.placement.tolist() == ["0:cpu0", "", "", ""]
    for row, says in ((brow(batch="0"), "line 3: batch_size 0 is not a whole number from 1"),
                      (brow(batch="1.5"), "line 3: batch_size 1.5 is not a whole number from 1"),
                      (brow(rate="0"), "line 3: rate_qps 0 is not a finite positive number"),
                      (brow(rate="inf"), "line 3: rate_qps inf is not a finite positive number"),
                      (brow(release="inf"), "line 3: actual_release_s inf is not a finite time"),
                      (brow(first="soon"), "line 3: first_query_latency_ms 'soon' is not a time"),
                      (brow(placement=" "), "line 3: placement (empty) is missing on a batch that finished"),
                      (brow(times=""), "line 3: task_times (empty) is missing on a batch that finished")):
        message = refusal(lambda row=row: read_batches(batches_file(tmp_path, [brow(index="5"), row])))
        assert says in message, (says, message)


def test_the_task_table_skips_empty_cells_and_refuses_times_without_a_placement():
    """Blank, NaN (older readers) or empty task cells: a batch that ran nothing, skipped; times whose placement
    is empty or non-finite times are unreadable cells (one line), not a table of NaN; a part missing from the
    placement reads '?', a task without copies has NaN copy times, a file without 'measured' counts it measured."""
    from staronnx_cli.results.tasks import spans, task_table

    base = {"batch_index": 0, "batch_size": 1, "rate_qps": 10.0, "transfer_times": ""}
    skipped = [base | {"placement": p, "task_times": t} for p, t in (("", ""), (" ", " "), (np.nan, np.nan))]
    assert task_table(pd.DataFrame(skipped)).empty
    for cells in ({"placement": "", "task_times": "0:0.1-0.2"}, {"placement": "0:cpu0", "task_times": "0:nan-0.2"}):
        with pytest.raises(UserError, match="unreadable task cells"):
            task_table(pd.DataFrame([base | cells]))
    table = task_table(pd.DataFrame([base | {"placement": "0:cpu0", "task_times": "0:0.1-0.2;1:0.2-0.3",
                                             "transfer_times": "1:0.15-0.2"}]))
    assert table.worker.tolist() == ["cpu0", "?"] and table.measured.tolist() == [True, True]
    assert math.isnan(table.transfer_start_s.iloc[0]) and table.transfer_end_s.iloc[1] == 0.2
    assert spans("") == [] and spans(None) == []


# -- split: plan.json --------------------------------------------------------------------------------------------------

def plan_data(**changes) -> dict:
    """A two-part chain plan as plan.json holds it: x -> part 0 -> h -> part 1 -> y."""
    import dataclasses

    from staronnx_cli.split.plan import EdgeSpec, PartSpec, Plan, TensorSpec

    def tensor(name):
        return TensorSpec(name, "float32", ["batch", 4], 16)

    parts = [PartSpec(0, "part_0.onnx", 1, 1, {"cpu": 2.0}, 0.5, [tensor("x")], [tensor("h")], flops=1.0,
                      bytes_moved=1.0),
             PartSpec(1, "part_1.onnx", 1, 1, {"cpu": 2.0}, 0.5, [tensor("h")], [tensor("y")], flops=1.0,
                      bytes_moved=1.0)]
    plan = Plan("/m.onnx", "ab", "costs.csv", "cd", "cpu", 1, "topo", "", 0, 0.5, 0.5, 16, parts,
                [EdgeSpec(-1, 0, ["x"], 16), EdgeSpec(0, 1, ["h"], 16)], ["x"], ["y"])
    data = dataclasses.asdict(plan)
    for path, value in changes.items():  # "parts.1.share" = value
        *where, last = path.split(".")
        node = data
        for key in where:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return data


def read_plan_of(tmp_path: Path, data: dict):
    import json

    from staronnx_cli.split.plan import read_plan

    folder = tmp_path / f"plan{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / "plan.json").write_text(json.dumps(data))
    return read_plan(folder)


def test_a_plan_read_back_is_checked_field_by_field(tmp_path):
    """plan.json edited by hand: each wrong field is one line naming it (a sha256 that is no text, parts listed out
    of order, a part without a file, a device time of text or -1, a negative or boolean share, flops or bytes,
    a dag that is no object, a launch order that repeats a part, groups of another length or below 0, a boolean
    in them); a time of exactly 0 us, an empty launch order's absence, are read."""
    assert read_plan_of(tmp_path, plan_data(**{"parts.0.estimated_us": {"cpu": 0}})).parts[0].estimated_us == {"cpu": 0}
    assert read_plan_of(tmp_path, plan_data(dag={"launch_order": [1, 0], "groups": [0, 0]})).dag["groups"] == [0, 0]
    swapped = plan_data()
    swapped["parts"].reverse()
    for data, says in ((plan_data(source_sha256=5), "source_model and source_sha256 must be text"),
                       (swapped, "parts must be listed in their order, part i at index i (their indexes read [1, 0])"),
                       (plan_data(**{"parts.1.file": ""}), "part 1 names no file"),
                       (plan_data(**{"parts.0.estimated_us": {"cpu": "fast"}}), "part 0's estimated_us must map"),
                       (plan_data(**{"parts.0.estimated_us": {"cpu": -1}}), "part 0's estimated_us must map"),
                       (plan_data(**{"parts.0.estimated_us": {"cpu": float("inf")}}), "part 0's estimated_us"),
                       (plan_data(**{"parts.0.estimated_us": [2.0]}), "part 0's estimated_us must map"),
                       (plan_data(**{"parts.1.share": True}), "part 1's share must be a number, 0 or more"),
                       (plan_data(**{"parts.1.flops": -1}), "part 1's flops must be a number, 0 or more"),
                       (plan_data(**{"parts.1.bytes_moved": -1}), "part 1's bytes_moved must be a number, 0 or more"),
                       (plan_data(dag=[]), "dag must be an object"),
                       (plan_data(dag={"launch_order": [0, 0]}), "dag.launch_order must order each of its 2 parts"),
                       (plan_data(dag={"launch_order": []}), "dag.launch_order must order each of its 2 parts"),
                       (plan_data(dag={"groups": [0]}), "dag.groups must give each of its 2 parts a group from 0"),
                       (plan_data(dag={"groups": [0, -1]}), "dag.groups must give each of its 2 parts a group from 0"),
                       (plan_data(dag={"groups": [0, True]}), "dag.groups must be a list of whole numbers")):
        message = refusal(lambda data=data: read_plan_of(tmp_path, data))
        assert says in message and "(edited?): recreate it with 'staronnx split'" in message, (says, message)


def test_a_plan_s_edges_run_forward_and_bring_only_what_their_source_makes(tmp_path):
    """An edge from a part to itself or to a part beyond the last, an index that is no number, a tensor an edge
    brings that its source part (or the model's inputs) does not make, a part input no edge brings: each one line
    (the runtimes run part p after the parts it reads; a moved tensor ran a part before its real source ended)."""
    self_edge = plan_data(**{"edges.1.source": 1})
    beyond = plan_data(**{"edges.1.target": 2})
    text = plan_data(**{"edges.1.source": "0"})
    for data, says in ((self_edge, "edge 1 -> 1 does not run from an earlier part to a later one of its 2"),
                       (beyond, "edge 0 -> 2 does not run from an earlier part to a later one of its 2"),
                       (text, "edge 0 -> 1 does not run from an earlier part"),
                       (plan_data(**{"edges.0.source": -2}), "edge -2 -> 0 does not run from an earlier part"),
                       (plan_data(**{"edges.1.tensors": ["h", "x"]}), "edge 0 -> 1 brings 'x', which is not among "
                                                                      "part 0's outputs"),
                       (plan_data(**{"edges.0.tensors": ["x", "h"]}), "edge -1 -> 0 brings 'h', which is not among "
                                                                      "the model's inputs"),
                       (plan_data(**{"edges.1.tensors": []}), "part 1 reads 'h', which no edge brings it")):
        message = refusal(lambda data=data: read_plan_of(tmp_path, data))
        assert says in message, (says, message)
    assert read_plan_of(tmp_path, plan_data()).edges[0].source == -1


# -- profile: costs.csv -----------------------------------------------------------------------------------------------

COSTS_HEADER = "node,op_type,device,batch_size,runs,mean_us,median_us,std_us,output_bytes,host_us,timing"


def crow(node="conv", device="cpu:1", batch="1", runs="10", mean="5.0", out="64", timing="cpu") -> str:
    return f"{node},Conv,{device},{batch},{runs},{mean},{mean},0.5,{out},{mean},{timing}"


def costs_file(tmp_path: Path, rows: list[str], name: str = "costs.csv") -> Path:
    path = tmp_path / name
    path.write_text(COSTS_HEADER + "\n" + "".join(r + "\n" for r in rows))
    return path


def test_costs_rows_hold_whole_batches_and_runs_named_nodes_and_times_up_to_an_hour(tmp_path):
    """costs.csv edited by hand: a time above an hour (1e300 us overflowed METIS's weights), an output above a PiB,
    a batch or run count past 2^31 or not whole, a batch of 0, a blank node or device, a node's row twice at one
    batch: each one line naming the row and the value; an hour exactly, a PiB exactly, the same node at two batch
    sizes, are read (as numbers)."""
    from staronnx_cli.profile.costs import read_costs

    ok = read_costs(costs_file(tmp_path, [crow(mean="3.6e9", out=str(2**50)), crow(batch="2", runs="1")], "ok.csv"))
    assert ok.batch_size.tolist() == [1, 2] and ok.mean_us.iloc[0] == 3.6e9
    unknown = read_costs(costs_file(tmp_path, [crow(out="-1")], "unknown.csv"))  # as profile writes it: was refused
    assert unknown.output_bytes.tolist() == [-1]
    for row, says in ((crow(mean="3.7e9"), "line 3: mean_us is 3.7e+09, not a value from 0 to 3.6e+09"),
                      (crow(out=str(2**50 + 2**40)), "line 3: output_bytes is 1.127e+15, not a value from 0 to "
                                                      "1.1259e+15"),
                      (crow(out="-2"), "line 3: output_bytes is -2, not a value from 0 to"),
                      (crow(batch=str(2**31 + 1)), "line 3: batch_size is 2.14748e+09, not a value from 0 to"),
                      (crow(runs=str(2**31 + 1)), "line 3: runs is 2.14748e+09, not a value from 0 to"),
                      (crow(batch="0"), "line 3: batch_size 0 is not a whole number from 1"),
                      (crow(batch="1.5"), "line 3: batch_size 1.5 is not a whole number from 1"),
                      (crow(runs="2.5"), "line 3: runs 2.5 is not a whole number from 1"),
                      (crow(node=" "), "line 3: node is empty"),
                      (crow(device=" "), "line 3: device is empty"),
                      (crow(node="relu"), "line 3: node 'relu' at batch 1 on cpu:1 is there twice"),
                      (crow(timing="gpu"), "line 3: timing 'gpu' on device cpu:1: GPU timings belong to cuda")):
        message = refusal(lambda row=row: read_costs(costs_file(tmp_path, [crow(node="relu", batch="1"), row])))
        assert says in message, (says, message)
    assert "has no rows" in refusal(lambda: read_costs(costs_file(tmp_path, [], "header.csv")))


# -- the verdict: latency trends ---------------------------------------------------------------------------------------

def zigzag(slope: float, noise: float, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """n batches released 1 s apart, latency slope x t plus an alternating +-noise."""
    t = np.arange(float(n))
    return slope * t + noise * (-1.0) ** np.arange(n), t


def test_the_latency_slope_and_its_standard_error_are_exact():
    """0, 1, 3 at 0, 1, 2 s: slope 1.5, standard error sqrt(1/12) (residuals over n - 2, per spread); two batches,
    or all released at one instant, give no slope (0) and an infinite error, not a division by zero."""
    from staronnx_cli.metrics.points import latency_slope

    slope, stderr = latency_slope([0.0, 1.0, 3.0], [0.0, 1.0, 2.0])
    assert slope == pytest.approx(1.5) and stderr == pytest.approx(math.sqrt(1 / 12))
    assert latency_slope([1.0, 2.0], [0.0, 1.0]) == (0.0, math.inf)
    assert latency_slope([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]) == (0.0, math.inf)


def test_a_draining_latency_must_fall_fast_and_significantly():
    """draining(): 10 ms per s falling at 1100 standard errors is a backlog draining (said in ms per s, positive);
    1 ms per s (below 0.5 % of elapsed time) is not, nor 12 ms per s at 2.7 standard errors (below 3)."""
    from staronnx_cli.metrics.points import draining

    assert draining(*zigzag(-0.01, 0.0001)) == "latency falls 10 ms per s"
    assert draining(*zigzag(-0.001, 0.0001)) == ""  # significant, too slow
    assert draining(*zigzag(-0.01, 0.05)) == ""  # fast, within the noise


def test_congestion_needs_a_rise_above_3_percent_at_3_standard_errors_over_enough_batches():
    """congestion(): 35 ms per s rising is 3 % unserved (congested); 10 ms per s is not, however significant;
    100 ms per s at 2.7 standard errors is not; a slope of 2 is 'about 100 %' (not 200 %); 10 batches are enough
    when 10 are asked; the later half is at least min_batches long, and later_half=False judges every batch."""
    from staronnx_cli.metrics.points import congestion

    assert congestion(*zigzag(0.035, 0.001), later_half=False) == \
        "latency grows 35 ms per s: about 3% of the load is not served"
    assert congestion(*zigzag(0.035, 0.001, n=10), later_half=False).startswith("latency grows 35 ms per s")
    assert congestion(*zigzag(0.01, 0.0001), later_half=False) == ""
    assert congestion(*zigzag(0.1, 0.35), later_half=False) == ""
    assert congestion(*zigzag(2.0, 0.01), later_half=False).endswith("about 100% of the load is not served")
    t = np.arange(20.0)  # rising over the first 10, flat over the last 10
    rise_then_flat = np.minimum(t, 10) * 0.1 + 0.001 * (-1.0) ** np.arange(20)
    assert congestion(rise_then_flat, t) == "" and congestion(rise_then_flat, t, later_half=False).startswith(
        "latency grows 54 ms per s")
    t = np.arange(12.0)  # 12 batches: the later 10 (not 6) are judged, and they still rose
    assert congestion(np.minimum(t, 6) * 0.1 + 0.001 * (-1.0) ** np.arange(12), t).startswith(
        "latency grows 42 ms per s")


def test_a_worker_s_busy_share_is_taken_over_at_least_the_time_the_later_queries_were_offered():
    """_busy_window: from the later batches' first arrival to their last end, or to len x N / rate after it where
    that is later (two batches of 2 at 10 q/s: 0.4 s), never over one batch's own span; no batch: no window."""
    from staronnx_cli.sweep.judge import _busy_window

    p = SimpleNamespace(batch_size=2, rate_qps=10.0)
    fast = [SimpleNamespace(first_arrival_s=1.0, scheduled_release_s=1.1, end_s=1.1),
            SimpleNamespace(first_arrival_s=1.2, scheduled_release_s=1.3, end_s=1.3)]
    assert _busy_window(p, fast) == (1.0, pytest.approx(1.4))
    slow = [SimpleNamespace(first_arrival_s=1.0, scheduled_release_s=1.1, end_s=2.5)]
    assert _busy_window(p, slow) == (1.0, 2.5)
    assert _busy_window(p, []) == (0.0, 0.0)


def falling_records(late_s: float = 0.0):
    """20 batches at 20 q/s, one 15 ms task each, latency 0.3 s falling to 0.02 s (a backlog draining)."""
    from staronnx_cli.runtime.scheduler import BatchRecord, TaskRecord

    records = []
    for k in range(20):
        t = 0.05 * k
        latency = max(0.3 - 0.3 * t, 0.02) + 0.001 * (k % 3)
        record = BatchRecord(k, t, t, 1, k, actual_release_s=t + late_s, end_s=t + latency)
        record.tasks.append(TaskRecord(0, 0, t + latency - 0.015, t + latency))
        records.append(record)
    return records


def test_a_draining_point_s_note_names_its_fall_its_batch_count_and_outranks_a_late_release():
    """The note of a point whose latency falls: the fall against the scheduled releases (not the ends), over how
    many measured batches, an upper bound; it is the note even when the releases were also late (the later note
    would hide it); a point stopped for a reason keeps the reason alone, no note."""
    from staronnx_cli.sweep.judge import Evidence, judge_point
    from staronnx_cli.sweep.point import PointSpec, point_row

    spec = PointSpec(batch_size=1, rate_qps=20.0, warmup=0, batches=20)
    row = point_row(spec, falling_records(late_s=0.002), "", [0.05 * k for k in range(20)], ["cpu0"], 0.015)
    assert not row["congested"]
    assert row["reason"].startswith("latency falls 298 ms per s over its 20 measured batches (a backlog left by a "
                                    "slowdown, still draining): its latency is an upper bound"), row["reason"]
    records = falling_records()
    latency = np.array([r.end_s - r.first_arrival_s for r in records])
    ev = Evidence(records, latency, [[(t.start_s, t.end_s) for r in records for t in r.tasks]], 60.0, 0.015, 0.015,
                  0, False)
    verdict = judge_point(spec, "stopped by hand", ev)
    assert (verdict.reason, verdict.note) == ("stopped by hand", "")


def test_a_point_exactly_three_times_its_capacity_is_judged_by_its_trend():
    """FAR_BEYOND: a short calm point is congested only beyond 3 x the workers' capacity, not at it."""
    from staronnx_cli.runtime.scheduler import BatchRecord, TaskRecord
    from staronnx_cli.sweep.judge import Evidence, judge_point
    from staronnx_cli.sweep.point import PointSpec

    spec = PointSpec(batch_size=1, rate_qps=30.0, warmup=0, batches=4, arrival="poisson")
    records = []
    for k in range(4):
        t = k / 30.0
        record = BatchRecord(k, t, t, 1, k, actual_release_s=t, end_s=t + 0.01)
        record.tasks.append(TaskRecord(0, 0, t, t + 0.01))
        records.append(record)
    ev = Evidence(records, np.full(4, 0.01), [[]], 10.0, 0.1, 0.1, 0, False)
    assert judge_point(spec, "", ev).reason == ""
    beyond = PointSpec(batch_size=1, rate_qps=30.5, warmup=0, batches=4, arrival="poisson")
    assert judge_point(beyond, "", ev).reason.startswith("3 x the workers' capacity of 10 q/s")


# -- extensions -----------------------------------------------------------------------------------------------------

def judge_of(latencies: list[float], batches: int, capacity: float | None = 100.0, extensions: int = 4):
    """A PointJudge that watched these latencies, one batch per 0.1 s (no warm-up)."""
    from staronnx_cli.runtime.scheduler import BatchRecord
    from staronnx_cli.sweep.point import PointJudge, PointSpec

    judge = PointJudge(PointSpec(1, 10.0, 0, batches, extensions=extensions), capacity_qps=capacity)
    for k, latency in enumerate(latencies):
        judge.watch(BatchRecord(k, 0.1 * k, 0.1 * k, 1, k, actual_release_s=0.1 * k, end_s=0.1 * k + latency))
    return judge


def test_a_point_is_extended_while_its_latest_k_batches_rise_or_fall_and_only_below_capacity():
    """extend(): a rise over the latest K batches (K = 5, fewer than 10: the whole window counts), or a fall over
    the whole window (one that fell in its first half alone too), runs K more, up to `extensions` times; a flat
    latest K after an earlier rise does not; beyond or without a known capacity, never."""
    rising = [0.01 + 0.02 * k for k in range(5)]
    judge = judge_of(rising, 5, extensions=1)
    assert judge.extend() and judge.extended == 1 and not judge.extend()  # its one extension granted
    assert not judge_of(rising, 5, capacity=5.0).extend() and not judge_of(rising, 5, capacity=None).extend()
    early_fall = [0.3 - 0.05 * k for k in range(5)] + [0.05 + 0.0001 * (k % 2) for k in range(15)]
    assert judge_of(early_fall, 20).extend()  # fell over the first quarter of its window, flat since
    rose_then_flat = [0.01 + 0.05 * k for k in range(20)] + [1.0 + 0.0001 * (k % 2) for k in range(20)]
    assert not judge_of(rose_then_flat, 20).extend()  # the latest 20 alone are judged


# -- sweep checks: the grid and --resume -------------------------------------------------------------------------------

def grid(**changes):
    from staronnx_cli.sweep.settings import SweepSettings

    return SweepSettings(Path("m.onnx"), Path("out"), **({"batch_sizes": (1,), "rates": (1000.0,), "batches": 2,
                                                          "warmup": 0} | changes))


def test_the_grid_s_own_numbers_are_checked_at_their_edges():
    """check_grid: batch 1, 2 measured batches, 1,000,000 batches or warm-up batches, warm-up and seed 0, ports
    0 and 65533, a queue delay of 0 are each allowed; one past each edge (batch 0, 1 measured batch, 1,000,001
    warm-up batches, warm-up or seed -1, port 65534, an infinite or negative delay, --sim-noise on a real sweep,
    max-hours 0) is refused in one line naming the option."""
    from staronnx_cli.sweep.checks import check_grid

    for fine in (grid(), grid(batches=1_000_000, rates=(1e9,)), grid(warmup=1_000_000, rates=(1e9,)),
                 grid(seed=0, triton_port=65533, system="triton"), grid(max_queue_delay_ms=0.0)):
        check_grid(fine)
    for bad, says in ((grid(batch_sizes=(0,)), "--batch [0]: batch sizes must be at least 1"),
                      (grid(batches=1), "--batches 1: at least 2 measured batches"),
                      (grid(batches=1_000_001), "--batches 1000001: at most 1,000,000 batches per point"),
                      (grid(warmup=1_000_001), "--warmup 1000001: at most 1,000,000 batches per point"),
                      (grid(warmup=-1), "--warmup -1: cannot be negative"),
                      (grid(seed=-1), "--seed -1: a seed is a non-negative integer"),
                      (grid(triton_port=65534), "--triton-port 65534: a TCP port from 1 to 65533"),
                      (grid(max_queue_delay_ms=-0.5), "--max-queue-delay -0.5: a delay in ms must be a finite"),
                      (grid(max_queue_delay_ms=math.inf), "--max-queue-delay inf: a delay in ms must be a finite"),
                      (grid(sim_noise=True), "--sim-noise draws the simulator's task times: add --engine sim"),
                      (grid(max_hours=0.0), "--max-hours 0: give a positive, finite number of hours"),
                      (grid(triton_port=8001), "--triton-port 8001 is the Triton server's port: add --system triton")):
        assert says in refusal(lambda bad=bad: check_grid(bad)), says


def test_a_resume_on_the_other_hot_path_is_refused_with_the_switch_that_matches_it(tmp_path):
    """_check_hot_path: a run of the Python scheduler resumed on the native core is told to resume it with
    STARONNX_HOT_PATH=python (and the other way round, without it); only the path's name counts, not its
    parenthesised detail; a run that recorded none (older) is resumed."""
    from staronnx_cli.sweep.checks import _check_hot_path

    _check_hot_path("native core (C, 3 threads)", "native core (C, 4 threads)", tmp_path)
    _check_hot_path(None, "native core", tmp_path)
    _check_hot_path("python scheduler", None, tmp_path)
    said = refusal(lambda: _check_hot_path("python scheduler (fallback)", "native core", tmp_path))
    assert "measured on the python scheduler, this sweep runs on the native core" in said
    assert "resume it with STARONNX_HOT_PATH=python" in said
    said = refusal(lambda: _check_hot_path("native core", "python scheduler", tmp_path))
    assert "resume it without STARONNX_HOT_PATH=python" in said


# -- systems, policies, campaigns --------------------------------------------------------------------------------------

def test_a_system_is_given_what_it_runs_and_a_static_policy_one_kind_per_part():
    """check_system_target: a whole-model system takes a model (1 part), not a plan of 2; ortstreams takes a
    branch plan only (a model, or a topo plan, each with its own fix); check_policy_parts: as many kinds as parts
    is fine, one more is a typo."""
    from staronnx_cli.runtime.policies import check_policy_parts
    from staronnx_cli.systems import WHOLE_MODEL, check_system_target

    whole = sorted(WHOLE_MODEL)[0]
    check_system_target(whole, 1)
    check_system_target("ortstreams", 3, "branches")
    check_system_target("staronnx", 3, "topo")
    assert f"--system {whole} runs the whole model: give the model, not a plan" in refusal(
        lambda: check_system_target(whole, 2, "topo"))
    assert "give the plan of 'staronnx split MODEL --method branches', not the model" in refusal(
        lambda: check_system_target("ortstreams", 1, ""))
    assert "this plan was split with --method topo" in refusal(lambda: check_system_target("ortstreams", 2, "topo"))
    two = SimpleNamespace(kinds=["cpu", "cuda"])
    check_policy_parts("static:cpu,cuda", two, 2)
    assert "names 2 kinds for 1 part(s)" in refusal(lambda: check_policy_parts("static:cpu,cuda", two, 1))


def test_a_sweep_s_refusal_in_a_campaign_names_its_keys_not_its_options():
    """campaign_words: --rate and --max-hours are the [[sweep]] keys rate and max-hours; split's --method is not
    a [[sweep]] key and stays as it is."""
    from staronnx_cli.fleet.campaign import campaign_words

    assert campaign_words("--rate 0 and --max-hours 2; --batches 1; --method metis") == \
        "rate 0 and max-hours 2; batches 1; --method metis"


def test_a_campaign_sweep_s_settings_are_its_own_keys():
    """SweepSpec.settings: every key of the [[sweep]] reaches the sweep's settings (batches, warm-up, seed,
    system, policy, engine, the rates and batch sizes, a trailing comma allowed) and the model is named by its
    file's stem."""
    from staronnx_cli.fleet.campaign import SweepSpec

    spec = SweepSpec("s", "models/net.onnx", ("cpu",), workers="cpu:2", batch="1, 4,", rate="5,10", system="ort",
                     policy="eager", engine="sim", batches=7, warmup=3, seed=9)
    s = spec.settings(platform=Path("p.toml"), resume=True)
    assert (s.batch_sizes, s.rates, s.auto_rates, s.batches, s.warmup, s.seed) == ((1, 4), (5.0, 10.0), False, 7, 3, 9)
    assert (s.workers, s.system, s.policy, s.engine, s.platform, s.resume, s.model_name) == \
        ("cpu:2", "ort", "eager", "sim", Path("p.toml"), True, "net")
    assert SweepSpec("a", "tiny_cnn", ("cpu",)).settings().auto_rates


# -- advise: curves.csv and its notes ----------------------------------------------------------------------------------

def confirmed(measured: dict, predicted: dict, curve=((5.0, 2.0),)):
    from staronnx_cli.advise.confirm import Confirmed

    candidate = SimpleNamespace(name="c1", setup="cpu:1 dmda N=1")
    return Confirmed(candidate, list(predicted), predicted=dict(predicted), measured=dict(measured),
                     curve=list(curve))


def test_a_confirmation_is_noted_only_beyond_three_times_its_prediction():
    """far_from_predicted: 3 x exactly is within what a busy machine gives, 3.1 x is said with its ratio; a
    congested confirmation (None) or one without a prediction is no note, not a crash."""
    from staronnx_cli.advise.confirm import far_from_predicted

    entry = confirmed({10.0: 30.0, 20.0: 31.0, 30.0: None, 40.0: 50.0}, {10.0: 10.0, 20.0: 10.0, 30.0: 5.0,
                                                                        40.0: None})
    (note,) = far_from_predicted([entry])
    assert note.startswith("cpu:1 dmda N=1 at 20 q/s measured 31") and "(3.1 x)" in note, note


def test_curves_hold_the_predicted_curve_measured_points_and_real_congestion_in_rate_order(tmp_path):
    """write_curves: an entry without a curve writes nothing; its measured points in rate order; a point
    congested for real at the latency predicted there, none where nothing was predicted; read_curves reads them
    back as numbers."""
    from staronnx_cli.advise.answer import write_curves
    from staronnx_cli.plots.advice import read_curves

    drawn = confirmed({20.0: 4.0, 10.0: 3.0, 30.0: None, 40.0: None}, {10.0: 2.5, 20.0: 3.5, 30.0: 6.0, 40.0: None})
    write_curves([drawn, confirmed({10.0: 1.0}, {10.0: 1.0}, curve=())], "tiny_cnn", tmp_path / "curves.csv")
    curves = read_curves(tmp_path)
    assert list(zip(curves.what, curves.rate_qps, curves.latency_ms)) == [
        ("predicted", 5.0, 2.0), ("measured", 10.0, 3.0), ("measured", 20.0, 4.0), ("congested", 30.0, 6.0)]
    assert set(curves.candidate) == {"c1"} and curves.rate_qps.dtype.kind == "f"


def test_curves_rows_are_checked_and_a_dangling_link_is_not_called_missing(tmp_path):
    """read_curves: a kind not written by advise, a rate of 0 or inf, a latency below 0 or inf, each one line
    naming its file line; a latency of 0 is read; curves.csv a link to nothing is said to be so, not 'has no
    curves.csv'; a file without a column names it."""
    from staronnx_cli.plots.advice import read_curves

    head = "model,candidate,setup,rate_qps,what,latency_ms\n"
    good = "m,c,s,5,predicted,0\n"
    (tmp_path / "curves.csv").write_text(head + good)
    assert read_curves(tmp_path).latency_ms.tolist() == [0.0]
    for row in ("m,c,s,5,guessed,1", "m,c,s,0,predicted,1", "m,c,s,inf,predicted,1", "m,c,s,5,measured,-1",
                "m,c,s,5,measured,inf"):
        (tmp_path / "curves.csv").write_text(head + good + row + "\n")
        assert "curves.csv' line 3: what=" in refusal(lambda: read_curves(tmp_path)), row
    (tmp_path / "curves.csv").write_text("model,candidate,setup,rate_qps,what\nm,c,s,5,predicted\n")
    assert "lacks the column 'latency_ms'" in refusal(lambda: read_curves(tmp_path))
    (tmp_path / "curves.csv").unlink()
    (tmp_path / "curves.csv").symlink_to(tmp_path / "gone.csv")
    assert "has no curves.csv" not in refusal(lambda: read_curves(tmp_path))


# -- inputs: traces, models, ONNX Runtime's words, platforms -----------------------------------------------------------

def test_an_arrival_trace_is_rescaled_to_unit_gaps_and_repeated_one_mean_gap_apart(tmp_path):
    """from_trace: 0, 1, 4 s are gaps of 2 on average: 0, 0.5, 2 at unit mean rate; repeated after one mean gap
    (3, 3.5, 5) and cut at the queries asked; two equal times, one time, a falling one, several numbers a line, a
    NaN, a span past a float: each one line (the NaN's names its line)."""
    from staronnx_cli.load.schedule import from_trace

    trace = tmp_path / "t.txt"
    trace.write_text("0\n1\n4\n")
    assert from_trace(trace, 5).tolist() == [0.0, 0.5, 2.0, 3.0, 3.5]
    assert from_trace(trace, 6).tolist()[-1] == 5.0
    trace.write_text("0\n1\n1\n3\n")  # two arrivals at one instant: non-decreasing
    assert from_trace(trace, 4).tolist() == [0.0, 1.0, 1.0, 3.0]
    for text, says in (("1\n1\n", "at least two non-decreasing times"), ("1\n", "at least two"),
                       ("2\n1\n", "at least two non-decreasing"), ("0 1\n2 3\n", "has 2 numbers per line"),
                       ("0\nnan\n", "line 2: nan is not a finite time"),
                       ("-1e308\n1e308\n", "more than a number holds")):
        trace.write_text(text)
        assert says in refusal(lambda: from_trace(trace, 4)), text


def test_ort_s_refusal_keeps_its_reason_and_cuts_a_long_one_in_the_middle():
    """ort_reason: the status prefix and the C++ file, line and signature go; a message of exactly the limit is
    kept whole, a longer one keeps its first third and last two thirds around ' ... '; an empty one is its
    exception's type."""
    from staronnx_cli.errors import ort_reason

    raw = ("[ONNXRuntimeError] : 1 : FAIL : Load model failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:180 "
           "onnxruntime::Model::Model(int) Unsupported model IR version: 99, max supported IR version: 10")
    assert ort_reason(RuntimeError(raw)) == ("Load model failed: Unsupported model IR version: 99, max supported IR "
                                             "version: 10 (an onnx newer than this onnxruntime saved it: set "
                                             "m.ir_version = 10 before onnx.save, or upgrade onnxruntime)")
    reshape = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'r' "
               "Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 "
               "onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, "
               "onnxruntime::TensorShapeVector&, bool) "
               "input_shape_size == requested_shape_size was false. Input shape:{2,4,16}, requested shape:{1,64}")
    assert ort_reason(RuntimeError(reshape)) == (  # a reason in lower case after the signature: it was cut off
        "Non-zero status code returned while running Reshape node. Name:'r' Status Message: input_shape_size == "
        "requested_shape_size was false. Input shape:{2,4,16}, requested shape:{1,64}")
    assert ort_reason(RuntimeError("x" * 320)) == "x" * 320
    long = ort_reason(RuntimeError("a" * 200 + "b" * 200))
    assert long == "a" * 106 + " ... " + "a" * 14 + "b" * 200, long
    assert ort_reason(RuntimeError("")) == "RuntimeError"


def test_a_platform_task_of_0_ms_and_a_repeated_time_are_refused():
    """_times: mean_ms 0 is no time (latencies of 0.00 ms followed); the same (part, kind, batch) twice names the
    entry it repeats; another batch of the same part is a time of its own."""
    from staronnx_cli.runtime.platform import _times

    row = {"part": 0, "kind": "cpu:1", "batch": 1, "mean_ms": 1.0}
    assert len(_times({"times": [row, row | {"batch": 2}]})) == 2
    assert "'mean_ms' = 0: a task takes some time" in refusal(lambda: _times({"times": [row | {"mean_ms": 0}]}))
    assert "[[times]] #2 repeats [[times]] #1" in refusal(lambda: _times({"times": [row, row]}))


def test_the_draining_warning_counts_its_points_and_names_three():
    """noise._draining: every point whose reason says it was draining is counted, the first three named; a run
    without reasons, or none draining, warns nothing."""
    from staronnx_cli.analysis import noise
    from staronnx_cli.results.schema import DRAINING

    rows = [{"batch_size": n, "rate_qps": 10.0, "reason": f"latency falls 9 ms per s ({DRAINING})"}
            for n in (1, 2, 4, 8)]
    rows.append({"batch_size": 16, "rate_qps": 10.0, "reason": np.nan})
    (warning,) = noise._noted_warnings(SimpleNamespace(points=pd.DataFrame(rows)))
    assert warning.startswith("latency was still falling at 4 point(s) (N=1 at 10 q/s, N=2 at 10 q/s, N=4 at 10 "
                              "q/s and 1 more): a backlog")
    assert noise._noted_warnings(SimpleNamespace(points=pd.DataFrame({"batch_size": [1]}))) == []
