"""Mutation round 6 (today's --shape, split of users' models, resume stops, profile's estimate warning, plan
words): each test holds a behaviour a surviving mutant changed without any test noticing. Hand-made tiny models."""

from pathlib import Path

import onnx
import pandas as pd
import pytest
from conftest import assert_one_line_error
from onnx import helper

from staronnx_cli.errors import UserError

GOLDEN_PLATFORM = Path(__file__).parent / "data" / "golden_sim" / "platform.toml"


def _save(path, inputs, outputs, nodes):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, 1, d) for n, d in inputs],
                              [helper.make_tensor_value_info(n, 1, d) for n, d in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _relu(path, shape, op="Relu"):
    return _save(path, [("x", shape)], [("y", shape)], [helper.make_node(op, ["x"], ["y"], name="r")])


def _dims(names):
    return list(helper.make_tensor_value_info("x", 1, names).type.tensor_type.shape.dim)


# --- shapes.py

def test_a_shape_with_too_many_sizes_or_one_against_a_fixed_dimension_is_refused(cli, tmp_path):
    model = _save(tmp_path / "m.onnx", [("m", ["batch", None])], [("z", ["batch", None])],
                  [helper.make_node("Neg", ["m"], ["z"], name="n")])
    assert_one_line_error(cli("profile", model, "--shape", "m:4,5", "-o", tmp_path / "c.csv"),
                          "input 'm' has 1 dimension(s) after the batch ([?]): give 1 size(s)")
    fixed = _relu(tmp_path / "f.onnx", ["batch", "seq", 8])
    assert_one_line_error(cli("profile", fixed, "--shape", "x:16,5", "-o", tmp_path / "c.csv"),
                          "dimension 2 of 'x' is fixed at 8 in the model, not 5: give 8 there")
    twice = _relu(tmp_path / "b.onnx", ["batch", "batch"])
    assert_one_line_error(cli("profile", twice, "--shape", "x:4", "-o", tmp_path / "c.csv"),
                          "dimension 1 of 'x' is the batch ('batch', the first axis too)")


def test_shapes_are_read_with_spaces_and_a_trailing_comma_up_to_2_to_the_31():
    from staronnx_cli.shapes import InputShape, parse_shapes

    assert parse_shapes(["x: 16, 16"]) == parse_shapes(["x:16,16,"]) == [InputShape("x", (16, 16))]
    assert parse_shapes([f"x:{2**31}"]) == [InputShape("x", (2**31,))]
    with pytest.raises(UserError, match="from 1 to 2\\^31"):
        parse_shapes([f"x:{2**31 + 1}"])


def test_two_models_of_one_name_get_copies_of_their_own(tmp_path):
    from staronnx_cli.shapes import shaped_model

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _relu(tmp_path / "a" / "m.onnx", ["batch", "seq"])
    b = _relu(tmp_path / "b" / "m.onnx", ["batch", "seq"], "Neg")
    copy_a, copy_b = shaped_model(a, ["x:4"]), shaped_model(b, ["x:4"])
    assert copy_a != copy_b and onnx.load(copy_b).graph.node[0].op_type == "Neg"


def test_the_copy_fixes_outputs_too_and_nothing_to_fix_is_the_model_itself(tmp_path, monkeypatch):
    from staronnx_cli.shapes import shaped_model

    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))  # no copy from an earlier run
    model = _relu(tmp_path / "m.onnx", ["batch", "seq", "seq"])
    out = onnx.load(shaped_model(model, ["x:16,16"])).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out] == ["batch", 16, 16]
    static = _relu(tmp_path / "s.onnx", ["batch", 16])
    assert shaped_model(static, ["x:16"]) == static  # no copy, its own name


def test_no_copy_is_written_while_a_dimension_stays_free_and_a_zoo_file_keeps_its_zoo_name(tmp_path, monkeypatch):
    from staronnx_cli.shapes import shaped_model

    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    model = _save(tmp_path / "m.onnx", [("x", ["batch", "seq"]), ("m", ["batch", None])],
                  [("y", ["batch", "seq"]), ("z", ["batch", None])],
                  [helper.make_node("Relu", ["x"], ["y"], name="r"), helper.make_node("Neg", ["m"], ["z"], name="n")])
    with pytest.raises(UserError, match="input 'm' has free dimensions"):
        shaped_model(model, ["x:4"])
    assert not list((tmp_path / "cache").rglob("*.onnx"))
    zoo = _relu(tmp_path / "tiny-seed0-0123456789ab.onnx", ["batch", "seq"])
    assert shaped_model(zoo, ["x:4"]).name == "tiny.x-4.onnx"


# --- modelio.py

@pytest.mark.parametrize("names, refused", [(["batch", "time"], False), (["seq", "n", 8], True),
                                            (["S", "Batch", 8], True), (["batch", "batch_len"], False),
                                            (["seq", "bs", 8], True)])
def test_a_batch_named_after_the_first_axis_is_found_by_its_name(names, refused):
    from staronnx_cli.modelio import batch_not_first

    assert bool(batch_not_first("x", _dims(names))) == refused


def test_a_batch_of_1_points_to_the_fix_and_batch_multiples_are_named_batch_only():
    from staronnx_cli import modelio

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, [1, 4])])
    with pytest.raises(UserError, match="free it in place"):
        modelio.input_specs(helper.make_model(graph))
    assert modelio.batch_multiple("seq*4") == 0 and modelio.batch_multiple("batch*4") == 4
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g",
                              [helper.make_tensor_value_info("x", 1, [8, "batch*4"])],
                              [helper.make_tensor_value_info("y", 1, [8, "batch*4"])])
    assert modelio.batch_dims(helper.make_model(graph)) == ["batch*4"]  # a part's tensor, its batch second


# --- split

def test_an_axis_is_named_batch_only_when_it_grows_as_k_times_the_batch():
    from staronnx_cli.split.tensors import _axis_name

    assert [_axis_name(5, 5), _axis_name(1, 2), _axis_name(4, 8), _axis_name(3, 4), _axis_name(3, 5)] == \
        [5, "batch", "batch*4", None, None]


def test_a_weight_the_first_part_reads_given_back_as_an_output(cli, tmp_path):
    from test_split_cli import _own_model

    from staronnx_cli.split.plan import read_plan

    model = _own_model(tmp_path / "pt.onnx", "passthrough")
    proto = onnx.load(model)
    proto.graph.output[1].name = "w0"  # read by the first MatMul only
    onnx.save(proto, model)
    result = cli("split", model, "--offload", "0.5", "--batch", "2", "-o", tmp_path / "plan")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert read_plan(tmp_path / "plan").verification["passed"]


def test_verification_fixes_the_batch_dimensions_as_a_sweep_does(cli, tmp_path, monkeypatch):
    """The labelling before batch*K ([batch*seq, hidden] called [batch, hidden]) is caught by verification now."""
    from test_split_cli import _own_model

    from staronnx_cli.split import tensors

    monkeypatch.setattr(tensors, "_axis_name", lambda a, b: a if a == b else "batch")
    model = _own_model(tmp_path / "flat.onnx", "flat")
    assert cli("split", model, "--offload", "0.5", "--batch", "2", "-o", tmp_path / "plan").exit_code != 0


def test_a_batch_multiple_plan_runs_on_the_python_hot_path_too(cli, tmp_path, monkeypatch):
    from test_split_cli import _own_model

    monkeypatch.setenv("STARONNX_HOT_PATH", "python")
    model = _own_model(tmp_path / "flat.onnx", "flat")
    assert cli("split", model, "--offload", "0.5", "--batch", "2", "-o", tmp_path / "plan").exit_code == 0
    result = cli("sweep", tmp_path / "plan", "--workers", "cpu:1x1,cpu:1x1", "--batch", "3", "--rate", "50",
                 "--batches", "5", "--warmup", "1", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.stdout + result.stderr
    points = pd.read_csv(tmp_path / "run" / "points.csv")
    assert points.errors.isna().all() and (points.batches > 0).all(), points.to_dict("records")


def test_split_takes_the_shape(cli, tmp_path):
    from staronnx_cli.split.plan import read_plan

    model = _save(tmp_path / "m.onnx", [("x", ["batch", "seq"])], [("y", ["batch", "seq"])],
                  [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Neg", ["a"], ["b"], name="n"),
                   helper.make_node("Sigmoid", ["b"], ["y"], name="s")])
    result = cli("split", model, "--shape", "x:16", "--offload", "0.5", "-o", tmp_path / "plan")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "m.x-16" in str(read_plan(tmp_path / "plan").source_model)


# --- profile: costs and the estimate warning

def test_only_output_bytes_may_be_minus_one(tmp_path):
    from test_mutation_round4 import costs_file, crow

    from staronnx_cli.profile.costs import read_costs

    with pytest.raises(UserError, match="mean_us is -1, not a value from 0"):
        read_costs(costs_file(tmp_path, [crow(mean="-1")], "neg.csv"))


def test_the_estimate_warning_needs_three_nodes_three_kernels_and_takes_the_group_of_most_time():
    from staronnx_cli.profile.attribution import estimated_group_warning

    def row(node, us, kernels, how="fused"):
        return {"node": node, "mean_us": us, "kernels": kernels, "how": how}

    five = "a b c d e"
    assert estimated_group_warning(1, [row("m0", 45.0, five), row("m1", 45.0, five), row("x", 10.0, "x", "exact")]) \
        == ""  # 2 nodes
    assert estimated_group_warning(1, [row(f"m{i}", 30.0, "a b") for i in range(3)] + [row("x", 10.0, "x", "exact")]) \
        == ""  # 2 kernels
    big, small = [row(f"g{i}", 20.0, five) for i in range(3)], [row(f"s{i}", 1.0, "p q r") for i in range(5)]
    assert estimated_group_warning(1, small + big + [row("x", 35.0, "x", "exact")]).startswith(
        "batch 1: 60% of the node time is one group of 5 kernels shared among 3 nodes (g0 ... g2)")
    third = [row(f"t{i}", 10.0, five) for i in range(3)] + [row("x", 70.0, "x", "exact")]
    assert estimated_group_warning(1, third).startswith("batch 1: 30% of the node time")  # a quarter or more


def test_profile_prints_the_estimate_warning_at_level_basic_only(cli, tmp_path, monkeypatch, tiny_cnn_path):
    from staronnx_cli.profile import attribution

    monkeypatch.setattr(attribution, "estimated_group_warning", lambda n, rows: "GROUPWARN")
    args = ("profile", tiny_cnn_path, "--batch", "1", "--runs", "3", "--no-overhead")
    basic = cli(*args, "--opt-level", "basic", "-o", tmp_path / "b.csv")
    extended = cli(*args, "--opt-level", "extended", "-o", tmp_path / "e.csv")
    assert basic.exit_code == 0 and "GROUPWARN" in basic.stdout, basic.stdout + basic.stderr
    assert extended.exit_code == 0 and "GROUPWARN" not in extended.stdout


# --- plan words, mixes, advise

def test_a_whole_model_has_no_plan_words_and_a_split_is_named_in_titles():
    from test_analysis_edges import run_of

    from staronnx_cli.plots.figures import split_label, title_of

    whole = run_of([(1, 100, 10, 5.0, 0.1, False)], parts=1)
    assert whole.meta.plan_words() == "" and split_label(whole) == "whole model (run1)"
    split = run_of([(1, 100, 10, 5.0, 0.1, False)], parts=2, engine="sim", platform_name="p")
    assert "(2 parts, 10% of the compute offloaded), simulated on p" in title_of(split)


def test_a_mix_shape_of_numbers_is_one_line(tmp_path):
    from staronnx_cli.mix.spec import _model

    with pytest.raises(UserError, match="must be INPUT:SIZES or a list of them"):
        _model({"name": "a", "model": "tiny_cnn", "rate": 10, "batch": 1, "shape": [128]}, 0, tmp_path / "mix.toml")


def test_advise_refuses_a_shape_for_a_plan_and_names_the_model_by_its_shape(cli, tmp_path, monkeypatch):
    from staronnx_cli.advise import run as advise_run

    (tmp_path / "plan").mkdir()
    assert_one_line_error(cli("advise", tmp_path / "plan", "--shape", "x:4", "-o", tmp_path / "adv"),
                          "--shape applies to a model")

    def stop(s):
        raise UserError(f"NAME={s.model_name}")

    monkeypatch.setattr(advise_run, "check", stop)
    model = _relu(tmp_path / "m.onnx", ["batch", "seq"])
    assert_one_line_error(cli("advise", model, "--shape", "x:16", "--rate", "100", "-o", tmp_path / "adv"),
                          "NAME=m.x-16")


# --- resume

def test_a_resume_stops_at_the_lowest_congested_rate_of_the_rows(cli, tmp_path, tiny_cnn_path):
    args = ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", GOLDEN_PLATFORM, "--batch", "1", "--rate",
            "100,1500,3000,5000", "--batches", "20", "-o", tmp_path / "run")
    assert cli(*args).exit_code == 0
    points = tmp_path / "run" / "points.csv"
    lines = points.read_text().splitlines(keepends=True)
    congested = lines[2]  # 1500 q/s, and the same row at 5000: both measured congested
    points.write_text("".join([lines[0], lines[1], congested,
                               congested.replace(",1500.0,", ",5000.0,", 1).replace(",1500,", ",5000,", 1)]))
    assert set(pd.read_csv(points).rate_qps) == {100, 1500, 5000}
    assert cli(*args, "--resume").exit_code == 0
    assert pd.read_csv(points).set_index("rate_qps").loc[3000, "reason"] == \
        "not run: batch 1 was already congested at 1500 q/s"


def test_a_lower_rate_added_on_resume_that_congests_stops_the_rates_above_it(cli, tmp_path, tiny_cnn_path):
    base = ("sweep", tiny_cnn_path, "--engine", "sim", "--platform", GOLDEN_PLATFORM, "--batch", "1", "--batches",
            "20", "-o", tmp_path / "run")
    assert cli(*base, "--rate", "100,3000").exit_code == 0
    assert bool(pd.read_csv(tmp_path / "run" / "points.csv").set_index("rate_qps").loc[3000, "congested"])
    assert cli(*base, "--rate", "100,1500,2000,3000", "--resume").exit_code == 0
    points = pd.read_csv(tmp_path / "run" / "points.csv").set_index("rate_qps")
    assert points.loc[2000, "reason"] == "not run: batch 1 was already congested at 1500 q/s", points.reason.to_dict()
