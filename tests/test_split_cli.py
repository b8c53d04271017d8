"""`staronnx split` end to end on tiny models: plan, parts, verification, by-hand chaining, bad input."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from conftest import assert_one_line_error
from test_modelio import relu_model

from staronnx_cli.split.plan import read_plan, write_plan


@pytest.fixture(scope="module")
def tiny_costs(tmp_path_factory, tiny_cnn_path):
    from typer.testing import CliRunner

    from staronnx_cli.cli.app import app

    out = tmp_path_factory.mktemp("costs") / "costs.csv"
    result = CliRunner().invoke(app, ["profile", str(tiny_cnn_path), "--device", "cpu:1", "--batch", "2",
                                      "--runs", "3", "--warmup", "1", "--no-overhead", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_split_writes_a_verified_plan_that_chains_by_hand(cli, tiny_cnn_path, tiny_costs, tmp_path):
    plan_dir = tmp_path / "plan"
    result = cli("split", tiny_cnn_path, "--costs", tiny_costs, "--offload", "0.2", "--batch", "2", "-o", plan_dir)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "metis" in result.stdout and "topo" in result.stdout and "verified" in result.stdout
    plan = read_plan(plan_dir)
    assert [p.file for p in plan.parts] == ["part_0.onnx", "part_1.onnx"]
    assert plan.verification["passed"] and plan.method in ("metis", "topo")
    # times are measured (noisy), so check consistency, not a value: the tail's share is the offload
    assert plan.achieved_fraction == pytest.approx(sum(p.share for p in plan.parts[1:]), abs=2e-4)
    # run part_0 then part_1 by hand, feeding tensors by the names plan.json gives
    x = np.random.default_rng(3).standard_normal((5, 3, 32, 32)).astype(np.float32)
    pool = {"image": x}
    for part in plan.parts:
        session = ort.InferenceSession(str(plan_dir / part.file), providers=["CPUExecutionProvider"])
        assert sorted(i.name for i in session.get_inputs()) == sorted(t.name for t in part.inputs)
        pool.update(zip([t.name for t in part.outputs], session.run([t.name for t in part.outputs],
                                                                    {t.name: pool[t.name] for t in part.inputs})))
    full = ort.InferenceSession(str(tiny_cnn_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(pool["logits"], full.run(None, {"image": x})[0], rtol=1e-5, atol=1e-5)
    # every compute node is in exactly one part
    model = onnx.load(str(tiny_cnn_path))
    names = [n.name for p in plan.parts for n in onnx.load(str(plan_dir / p.file)).graph.node]
    assert sorted(names) == sorted(n.name for n in model.graph.node)
    # plan.json round-trips exactly
    write_plan(read_plan(plan_dir), tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads((plan_dir / "plan.json").read_text())


def test_a_stalled_run_that_moved_a_nodes_mean_moves_no_cut(cli, tiny_cnn_path, tiny_costs, tmp_path):
    """A stalled node weighs its median: one run stalled by the machine (mean 206.6 us, median 5.0 us) cut 32 % where
    10 % was asked. With one node's mean made 100 times its median, the plan is the clean costs' plan."""
    import pandas as pd

    from staronnx_cli.profile.steadiness import stalled_nodes_warning

    frame = pd.read_csv(tiny_costs)
    frame = frame.assign(mean_us=frame.median_us)  # no stall of this machine's own (it may be busy) in the test
    heaviest = int(frame.median_us.idxmax())
    clean, stalled = frame.copy(), frame.copy()
    clean.loc[heaviest, "mean_us"] = clean.loc[heaviest, "median_us"]
    stalled.loc[heaviest, "mean_us"] = 100 * stalled.loc[heaviest, "median_us"]
    clean.to_csv(tmp_path / "clean.csv", index=False)
    stalled.to_csv(tmp_path / "stalled.csv", index=False)
    plans = []
    for name in ("clean", "stalled"):
        costs = tmp_path / f"{name}.csv"
        assert cli("split", tiny_cnn_path, "--costs", costs, "--offload", "0.3", "--batch", "2", "-o",
                   tmp_path / name).exit_code == 0
        plans.append(read_plan(tmp_path / name))
    assert [p.share for p in plans[0].parts] == [p.share for p in plans[1].parts]
    assert plans[0].achieved_fraction == plans[1].achieved_fraction
    rows = stalled.to_dict("records")
    warning = stalled_nodes_warning(2, rows)
    assert warning.startswith(f"batch 2: 1 node(s) had a run far slower than their others (e.g. "
                              f"{rows[heaviest]['node']}: mean ") and "split takes their medians" in warning
    assert stalled_nodes_warning(2, frame.to_dict("records")) == ""  # none said


def test_three_parts_without_costs_profiles_on_the_fly(cli, tmp_path):
    plan_dir = tmp_path / "plan3"
    result = cli("split", "tiny_transformer", "--parts", "3", "--offload", "0.3", "-o", plan_dir)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "no --costs: profiled" in result.stdout
    plan = read_plan(plan_dir)
    assert len(plan.parts) == 3 and plan.verification["passed"]
    sources = {(e.source, e.target) for e in plan.edges}
    assert all(src < dst for src, dst in sources), "a chain: tensors only flow forward"
    assert (plan_dir / "costs.csv").exists()
    meta = json.loads((plan_dir / "costs.meta.json").read_text())  # as `staronnx profile` writes it: it said
    assert meta["runs"] == 10 and meta["warmup"] == 2 and meta["timing"] == ["cpu"]  # less, and other figures
    assert meta["batches"]["1"]["end_to_end_profiled"]["mean_us"] > 0 and meta["batches"]["1"]["gpu"] is None


@pytest.mark.parametrize("args, fragments", [
    (["--offload", "0"], ["--offload 0", "between 0.0001 and 0.9999"]),
    (["--offload", "1.5"], ["--offload 1.5"]),
    (["--offload", "1e-300"], ["--offload 1e-300"]),  # METIS threw an unknown exception on it
    (["--parts", "1"], ["--parts 1"]),
    (["--method", "random"], ["--method random"]),
])
def test_bad_options(cli, tiny_cnn_path, tiny_costs, tmp_path, args, fragments):
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, *args, "-o", tmp_path / "p"), *fragments)
    assert not (tmp_path / "p").exists()


def test_costs_of_another_model(cli, tiny_costs, tmp_path):
    from staronnx_cli.zoo.cache import build_cached

    other = build_cached("tiny_transformer")[0]
    assert_one_line_error(cli("split", other, "--costs", tiny_costs, "-o", tmp_path / "p"), "another model")


def test_edited_costs_rows_are_one_line(cli, tiny_cnn_path, tiny_costs, tmp_path):
    """A batch size of 0, or a node's row twice (its time counted twice), were accepted."""
    import pandas as pd

    frame = pd.read_csv(tiny_costs)
    times = ["mean_us", "median_us", "std_us", "host_us"]
    for edited, fragment in ((frame.assign(batch_size=0), "batch_size 0 is not a whole number from 1"),
                             (pd.concat([frame, frame.iloc[[0]]]), "is there twice"),
                             # each an internal error before: a ZeroDivisionError, pymetis' integer overflow, a
                             # float device; and a batch of 1.5 was used ("its batch-1.5 times")
                             (frame.assign(**{c: 0.0 for c in times}), "every compute node takes 0 us at batch"),
                             (frame.assign(**{c: 1e300 for c in times}), "mean_us is 1e+300, not a value from 0 to"),
                             (frame.assign(device=""), "line 2: device is empty"),
                             (frame.assign(batch_size=1.5), "batch_size 1.5 is not a whole number from 1"),
                             (frame.assign(runs=0), "runs 0 is not a whole number from 1")):
        path = tmp_path / "c.csv"
        edited.to_csv(path, index=False)
        assert_one_line_error(cli("split", tiny_cnn_path, "--costs", path, "-o", tmp_path / "p"), fragment)


def test_a_costs_file_of_its_header_alone_is_one_line(cli, tiny_cnn_path, tiny_costs, tmp_path):
    """split and plot --kind nodes met it with an IndexError and a TypeError."""
    header = tmp_path / "header.csv"
    header.write_text(tiny_costs.read_text().splitlines()[0] + "\n")
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", header, "-o", tmp_path / "p"), "has no rows")
    assert_one_line_error(cli("plot", header, "--kind", "nodes", "-o", tmp_path / "n.png"), "has no rows")


def test_existing_plan_is_kept_without_force(cli, tiny_cnn_path, tiny_costs, tmp_path):
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "costs.csv").write_text("a profile of the user's\n")  # not split's to replace, even with --force
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "-o", plan_dir, "--force"),
                          "holds 'costs.csv' but no plan.json: choose another -o")
    assert (plan_dir / "costs.csv").read_text() == "a profile of the user's\n"
    (plan_dir / "costs.csv").unlink()
    assert cli("split", tiny_cnn_path, "--costs", tiny_costs, "-o", plan_dir).exit_code == 0
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "-o", plan_dir), "already exists",
                          "--force")
    other = tmp_path / "run"  # e.g. a sweep's: --force was suggested, then refused
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "-o", other),
                          "holds 'keep.txt', which split does not write: choose another -o")
    assert (other / "keep.txt").read_text() == "mine"


def test_a_model_with_one_compute_node_cannot_be_split(cli, tmp_path):
    path = tmp_path / "one.onnx"
    onnx.save(relu_model(["b", 4]), str(path))
    assert_one_line_error(cli("split", path, "-o", tmp_path / "p"), "1 compute node")


def test_reading_a_plan_from_a_newer_schema_fails_clearly(tmp_path):
    from staronnx_cli.errors import UserError

    (tmp_path / "plan.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(UserError, match="schema version 99"):
        read_plan(tmp_path)


def chain_model():
    """x -> Relu -> Sigmoid -> Relu: no two nodes can run at once."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"), helper.make_node("Sigmoid", ["a"], ["s"], name="s1"),
             helper.make_node("Relu", ["s"], ["y"], name="r2")]
    return helper.make_model(helper.make_graph(nodes, "chain", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


def test_a_branch_plan_is_a_verified_dag_of_parts_that_a_real_sweep_runs(cli, tiny_cnn_path, tiny_costs, tmp_path):
    plan_dir = tmp_path / "branches"
    result = cli("split", tiny_cnn_path, "--costs", tiny_costs, "--batch", "2", "--method", "branches", "--streams",
                 "2", "--min-part-us", "0", "-o", plan_dir)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "branch plan: width 3" in result.stdout and "verified" in result.stdout
    plan = read_plan(plan_dir)
    assert plan.method == "branches" and plan.verification["passed"] and plan.dag["width"] == 3
    assert len(plan.dag["groups"]) == len(plan.parts) and set(plan.dag["groups"]) == {0, 1}
    assert plan.dag["node_critical_path_us"] <= plan.dag["critical_path_us"] < plan.dag["total_us"]
    assert sorted(plan.dag["launch_order"]) == list(range(len(plan.parts)))  # Opara's order, a permutation
    assert all(p.flops > 0 and p.bytes_moved > 0 and p.bound in ("memory", "compute") for p in plan.parts)
    sources = {(e.source, e.target) for e in plan.edges if e.source >= 0}
    assert all(src < dst for src, dst in sources)  # numbered in a topological order
    readers = [sum(1 for s, _ in sources if s == p) for p in range(len(plan.parts))]
    assert max(readers) >= 2, "a DAG, not a chain: some part feeds two parts that can run at once"
    write_plan(read_plan(plan_dir), tmp_path)  # round trip, the dag included
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads((plan_dir / "plan.json").read_text())
    drawn = cli("plot", plan_dir, "--kind", "parts")
    assert drawn.exit_code == 0 and (plan_dir / "parts.png").stat().st_size > 0, drawn.stdout + drawn.stderr
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("plot", tmp_path / "empty", "--kind", "parts"), "no plan at")
    run = tmp_path / "run"
    swept = cli("sweep", plan_dir, "--workers", "cpu:1x1,cpu:1x1", "--batch", "1", "--rate", "40", "--batches", "15",
                "--warmup", "2", "--policy", "opara", "-o", run)
    assert swept.exit_code == 0, swept.stdout + swept.stderr
    import pandas as pd

    cells = pd.read_csv(run / "batches.csv").placement.dropna()
    placed = [{int(task.split(":")[0]) for task in cell.split(",")} for cell in cells]
    assert placed and all(parts == set(range(len(plan.parts))) for parts in placed)  # every part of every batch ran
    one = cli("sweep", plan_dir, "--workers", "cpu:1x1", "--batch", "1", "--rate", "40", "--batches", "5",
              "--warmup", "1", "-o", tmp_path / "one")
    assert one.exit_code == 0 and "a branch plan of" in one.stdout + one.stderr


def test_the_min_part_us_a_refused_branch_plan_suggests_makes_one(cli, tiny_cnn_path, tiny_costs, tmp_path):
    """It suggested a quarter of the value given (2.5e+08 for 1e9), refused again and again."""
    import re

    args = ("split", tiny_cnn_path, "--costs", tiny_costs, "--batch", "2", "--method", "branches", "--streams", "2")
    refused = cli(*args, "--min-part-us", "1e9", "-o", tmp_path / "a")
    assert refused.exit_code == 2
    found = re.search(r"at most ([0-9.e+]+) us keeps two parts or more", refused.stderr)
    assert found, refused.stderr
    suggested = found.group(1)
    assert cli(*args, "--min-part-us", suggested, "-o", tmp_path / "b").exit_code == 0
    assert len(read_plan(tmp_path / "b").parts) >= 2
    other = cli(*args[:5], "4", *args[6:], "--min-part-us", "1e9", "-o", tmp_path / "c")  # costs of batch 2 only
    assert other.exit_code == 2 and "at batch 4" in other.stderr
    assert f"({tiny_costs} has no batch 4 on cpu:1: using its batch-2 times)" in " ".join(other.stderr.split())


def test_a_split_that_fails_leaves_nothing_and_its_fix_runs_as_is(cli, tiny_cnn_path, tmp_path):
    """It left the costs it profiled in -o, and the command its message suggested was refused: -o 'already
    exists'."""
    plan_dir = tmp_path / "plan_b"
    assert_one_line_error(cli("split", tiny_cnn_path, "--method", "branches", "--min-part-us", "1e6", "-o", plan_dir),
                          "lower --min-part-us")
    assert not plan_dir.exists()
    made = cli("split", tiny_cnn_path, "--method", "branches", "--min-part-us", "0", "-o", plan_dir)
    assert made.exit_code == 0 and (plan_dir / "plan.json").exists() and (plan_dir / "costs.csv").exists()
    before = {p.name: p.read_bytes() for p in plan_dir.iterdir()}
    assert_one_line_error(cli("split", tiny_cnn_path, "--method", "branches", "--min-part-us", "1e6", "-o", plan_dir,
                              "--costs", tmp_path / "none.csv", "--force"), "none.csv")
    assert {p.name: p.read_bytes() for p in plan_dir.iterdir()} == before  # refused before --force cleared it


def test_branch_plans_refuse_what_cannot_help(cli, tiny_cnn_path, tiny_costs, tmp_path):
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "--method", "branches", "--streams", "0",
                              "-o", tmp_path / "p"), "--streams 0")
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "--method", "branches", "--streams", "1",
                              "-o", tmp_path / "p"), "--streams 1: a branch plan runs at least 2")
    chain = tmp_path / "chain.onnx"
    onnx.save(chain_model(), str(chain))
    assert_one_line_error(cli("split", chain, "--method", "branches", "-o", tmp_path / "c"), "no two nodes",
                          "--method metis")
    assert not (tmp_path / "c").exists()  # said before anything is profiled or written
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    one = tmp_path / "one.onnx"  # one node: metis and topo cannot split it either, and were suggested
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "one", [x],
                                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(one))
    result = cli("split", one, "--method", "branches", "-o", tmp_path / "o")
    assert_one_line_error(result, "(one node: no split can help it)")
    assert "--method metis" not in result.stderr
    assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "--batch", "2", "--method", "branches",
                              "--min-part-us", "1e9", "-o", tmp_path / "m"), "lower --min-part-us")


def test_a_plan_cut_where_the_batch_is_not_the_first_axis_is_swept_at_every_batch_size(cli, tmp_path):
    """tiny_transformer splits Q, K and V along the first axis after a Transpose: a branch plan cuts tensors whose
    batch is their second axis ([1, batch, ...]). Their sessions fix the batch wherever it is (a sweep refused them:
    'fixed first dimension 1, not a batch dimension')."""
    import pandas as pd

    from staronnx_cli.zoo.cache import build_cached

    model = build_cached("tiny_transformer")[0]
    plan_dir = tmp_path / "plan"
    made = cli("split", model, "--method", "branches", "--streams", "2", "--min-part-us", "0", "-o", plan_dir)
    assert made.exit_code == 0, made.stdout + made.stderr
    inputs = [i for part in read_plan(plan_dir).parts for i in onnx.load(plan_dir / part.file).graph.input]
    second = [i.name for i in inputs if len(i.type.tensor_type.shape.dim) > 1
              and i.type.tensor_type.shape.dim[1].dim_param == "batch"]
    assert second, "the plan cuts no tensor with its batch on the second axis: this test no longer tests that"
    run = tmp_path / "run"
    swept = cli("sweep", plan_dir, "--workers", "cpu:2x1", "--batch", "1,2", "--rate", "40", "--batches", "6",
                "--warmup", "1", "-o", run)
    assert swept.exit_code == 0, swept.stdout + swept.stderr
    points = pd.read_csv(run / "points.csv")
    assert list(points.batches) == [6, 6] and not points.errors.fillna("").astype(str).str.len().any()


def test_ortstreams_runs_the_model_on_onnx_runtimes_logic_streams_laid_out_by_a_branch_plan(cli, tiny_cnn_path,
                                                                                             tiny_costs, tmp_path):
    """ONNX Runtime writes its own partition (one stream), every node of it goes to its plan group's stream, and the
    session on those streams gives the model's outputs; a sweep runs it; a model or a chain plan is one line."""
    import pandas as pd

    from staronnx_cli import modelio
    from staronnx_cli.systems.streams import PARTITION_KEY, partition_file, plan_streams

    plan_dir = tmp_path / "branches"
    made = cli("split", tiny_cnn_path, "--costs", tiny_costs, "--method", "branches", "--streams", "2",
               "--min-part-us", "0", "-o", plan_dir)
    assert made.exit_code == 0, made.stdout + made.stderr
    source, stream_of = plan_streams(plan_dir)
    assert source == tiny_cnn_path and set(stream_of.values()) == {0, 1}

    def options():
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        return so

    path, sizes = partition_file(source, options, ["CPUExecutionProvider"], stream_of, tmp_path)
    default = json.loads((tmp_path / "ort_partition_default.json").read_text())
    layout = json.loads(path.read_text())
    assert len(default["streams"]) == 1 and len(layout["streams"]) == 2 == len(layout["devices"])
    assert sorted(n for s in layout["streams"] for n in s) == sorted(default["streams"][0]) and sum(sizes) == len(
        default["streams"][0])
    so = options()
    so.add_session_config_entry(PARTITION_KEY, str(path))
    feeds = modelio.random_inputs(modelio.input_specs(modelio.load_model(source, with_weights=False)), 2)
    streamed = ort.InferenceSession(str(source), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    plain = ort.InferenceSession(str(source), options(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(streamed, plain))
    run = tmp_path / "run"
    swept = cli("sweep", plan_dir, "--system", "ortstreams", "--workers", "cpu:1x1", "--batch", "1,2", "--rate",
                "40", "--batches", "6", "--warmup", "1", "-o", run)
    assert swept.exit_code == 0, swept.stdout + swept.stderr
    assert list(pd.read_csv(run / "points.csv").batches) == [6, 6]
    assert "logic streams" in json.loads((run / "run.json").read_text())["native"]
    assert_one_line_error(cli("sweep", tiny_cnn_path, "--system", "ortstreams", "-o", tmp_path / "r"),
                          "give the plan of 'staronnx split MODEL --method branches'")
    chain = tmp_path / "chain"
    assert cli("split", tiny_cnn_path, "--costs", tiny_costs, "--offload", "0.3", "-o", chain).exit_code == 0
    assert_one_line_error(cli("sweep", chain, "--system", "ortstreams", "-o", tmp_path / "r"),
                          "was split with --method")


def test_costs_of_other_batch_sizes_use_the_nearest_the_smaller_on_a_tie_and_say_so(cli, tiny_cnn_path, tiny_costs,
                                                                                      tmp_path):
    """No times at the batch asked for: the nearest batch's are used, the smaller of two as near, and a note says
    which (a mutant taking the larger, or saying nothing, went unseen)."""
    import pandas as pd

    frame = pd.read_csv(tiny_costs)  # batch 2
    both = pd.concat([frame.assign(batch_size=1), frame.assign(batch_size=3)])
    path = tmp_path / "c13.csv"
    both.to_csv(path, index=False)
    result = cli("split", tiny_cnn_path, "--costs", path, "--offload", "0.3", "--batch", "2", "--no-verify", "-o",
                 tmp_path / "p")
    assert result.exit_code == 0, result.stderr
    assert f"{path} has no batch 2 on cpu:1: using its batch-1 times" in " ".join(result.stdout.split())


def test_a_two_node_chain_is_told_to_split_by_metis_or_topo():
    """The 'one node: no split can help it' words belong to one node: two in a chain can be cut by metis or topo."""
    from pathlib import Path

    from onnx import TensorProto, helper

    from staronnx_cli.errors import UserError
    from staronnx_cli.split.splitter import check_branches

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"), helper.make_node("Sigmoid", ["a"], ["y"], name="s1")]
    two = helper.make_model(helper.make_graph(nodes, "two", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                                               ["b", 4])]))
    with pytest.raises(UserError, match="split it with --method metis or topo"):
        check_branches(two, Path("two.onnx"))


def test_a_split_into_a_plan_directory_another_command_writes_is_refused(cli, tiny_cnn_path, tiny_costs, tmp_path):
    """Two `split -o P --force` at once: internal errors (KeyError, NoSuchFile), a part said to be 'not a regular
    file', or a stray part_2.onnx beside a 2-part plan (fuzz round 7). Split holds P's lock as sweep does."""
    import os

    from staronnx_cli.dirlock import run_lock

    plan_dir = tmp_path / "plan"
    assert cli("split", tiny_cnn_path, "--costs", tiny_costs, "--offload", "0.1", "-o", plan_dir).exit_code == 0
    before = {p.name: p.read_bytes() for p in plan_dir.iterdir() if p.name != ".staronnx.lock"}
    with run_lock(plan_dir):
        assert_one_line_error(cli("split", tiny_cnn_path, "--costs", tiny_costs, "--offload", "0.2", "-o", plan_dir,
                                  "--force"), "being written by another staronnx command", f"pid {os.getpid()}")
    assert {p.name: p.read_bytes() for p in plan_dir.iterdir() if p.name != ".staronnx.lock"} == before
    again = cli("split", tiny_cnn_path, "--costs", tiny_costs, "--offload", "0.2", "-o", plan_dir, "--force")
    assert again.exit_code == 0, again.stderr  # its own lock file is no foreign file


def _own_model(path, outputs_from: str):
    """A user's model as exporters write them: 'weights' (a second output computed from weights alone, 0-d and
    [1, 1], anchors and priors in detection models), 'passthrough' (a weight and an input given back as outputs),
    or 'flat' (an FFN on [batch*seq, hidden], as older exporters reshape it)."""
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(1)
    seq, hidden = (4, 8) if outputs_from == "flat" else (1, 16)
    shape = ["batch", seq, hidden] if outputs_from == "flat" else ["batch", hidden]
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    weights = [nh.from_array((rng.standard_normal((hidden, hidden)) * 0.1).astype(np.float32), f"w{i}")
               for i in range(4)] + [nh.from_array(np.array([-1, hidden], np.int64), "flat_shape")]
    first = "t0" if outputs_from == "flat" else "x"
    nodes = [h.make_node("Shape", ["x"], ["xshape"], name="shape"),
             h.make_node("Reshape", ["x", "flat_shape"], ["t0"], name="flatten")] if outputs_from == "flat" else []
    for i in range(4):
        nodes += [h.make_node("MatMul", [first if i == 0 else f"r{i - 1}", f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  h.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}")]
    outputs = [h.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    if outputs_from == "flat":
        nodes.append(h.make_node("Reshape", ["r3", "xshape"], ["y"], name="unflatten"))
    else:
        nodes.append(h.make_node("Identity", ["r3"], ["y"], name="out"))
    if outputs_from == "weights":
        nodes += [h.make_node("ReduceSum", ["w0"], ["total"], name="total", keepdims=0),
                  h.make_node("ReduceMax", ["w1"], ["peak"], name="peak", keepdims=1)]
        outputs += [h.make_tensor_value_info("total", TensorProto.FLOAT, []),
                    h.make_tensor_value_info("peak", TensorProto.FLOAT, [1, 1])]
    if outputs_from == "passthrough":
        outputs += [h.make_tensor_value_info("w2", TensorProto.FLOAT, [hidden, hidden]),
                    h.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    model = h.make_model(h.make_graph(nodes, "own", [x], outputs, weights), opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("outputs_from", ["weights", "passthrough", "flat"])
def test_models_as_users_export_them_split_and_sweep(cli, tmp_path, outputs_from):
    """A user's models (an own-model walk): an output from weights alone was an internal error (KeyError) in split and
    dropped every split in advise; a weight or an input given back as an output made an edge from the last part to
    the first; an FFN on [batch*seq, hidden] was labelled [batch, hidden] and passed verification (at batch 1, without
    the sweep's dimension overrides), then failed every point of every sweep."""
    model = _own_model(tmp_path / f"{outputs_from}.onnx", outputs_from)
    plan_dir = tmp_path / "plan"
    result = cli("split", model, "--offload", "0.5", "--batch", "2", "-o", plan_dir)
    assert result.exit_code == 0, result.stdout + result.stderr
    plan = read_plan(plan_dir)
    assert plan.verification["passed"] and len(plan.parts) == 2
    if outputs_from == "weights":  # 16 floats at batch 2: they read '0.1 KiB'
        assert "cut 128 B per batch of 2" in " ".join(result.stdout.split())
    assert all(e.source < e.target for e in plan.edges if isinstance(e.target, int) and e.source >= 0)
    if outputs_from == "flat":
        flat = [t for t in plan.parts[1].inputs if t.shape[0] != "batch" and t.name != "xshape"]
        assert [(t.shape, t.bytes_per_sample) for t in flat] == [(["batch*4", 8], 4 * 8 * 4)]
        from staronnx_cli import modelio
        from staronnx_cli.runtime.gpumemory import tensor_bytes

        part = modelio.load_model(plan_dir / "part_1.onnx")
        assert ("batch*4", 12) in modelio.batch_dim_values(part, 3)  # ORT's override: 4 rows per sample
        value = next(v for v in part.graph.input if v.name == flat[0].name)
        assert tensor_bytes(value, 3, frozenset(modelio.batch_dims(part))) == 3 * 4 * 8 * 4
    run = tmp_path / "run"
    result = cli("sweep", plan_dir, "--workers", "cpu:1x1,cpu:1x1", "--batch", "1,3", "--rate", "50",
                 "--batches", "5", "--warmup", "1", "-o", run)
    assert result.exit_code == 0, result.stdout + result.stderr
    points = pd.read_csv(run / "points.csv")
    assert points.errors.isna().all() and (points.batches > 0).all(), points.to_dict("records")
