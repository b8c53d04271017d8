"""Models as users bring them (a second own-model walk): outputs that are not tensors or are NaN on random inputs,
sequence-first exports the names give away, tf2onnx's 'name:0' inputs, a free sequence length in a mix or a
campaign without its shape, a saturation that is only a lower bound in the figures, fp16 estimates in split."""

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error
from onnx import TensorProto, helper, numpy_helper


def _model(path, nodes, inputs, outputs, weights=(), opsets=(("", 17),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(weights))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _classifier(path):
    """As skl2onnx writes one: a label [batch] and output_probability, a sequence of maps (ZipMap)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal((8, 16)) * 0.1).astype(np.float32), "w0"),
               numpy_helper.from_array((rng.standard_normal((16, 3)) * 0.1).astype(np.float32), "w1")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["a"], name="mm0"),
             helper.make_node("Relu", ["a"], ["r"], name="r"),
             helper.make_node("MatMul", ["r", "w1"], ["l"], name="mm1"),
             helper.make_node("Softmax", ["l"], ["p"], name="sm", axis=1),
             helper.make_node("ArgMax", ["p"], ["label"], name="am", axis=1, keepdims=0),
             helper.make_node("ZipMap", ["p"], ["probability"], name="zm", domain="ai.onnx.ml",
                              classlabels_int64s=[0, 1, 2])]
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64,
                                                                      helper.make_tensor_type_proto(1, [])))
    return _model(path, nodes, [helper.make_tensor_value_info("x", 1, ["batch", 8])],
                  [helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
                   helper.make_value_info("probability", maps)], weights, (("", 17), ("ai.onnx.ml", 3)))


def test_split_verifies_a_classifier_with_a_zipmap_and_a_model_nan_on_random_inputs(cli, tmp_path):
    """A ZipMap's maps were an internal error (float() of a dict), and a Log of random features, NaN on both sides,
    failed verification 'by nan' (please report this model)."""
    classifier = _classifier(tmp_path / "skl.onnx")
    result = cli("split", classifier, "--offload", "0.3", "-o", tmp_path / "p1")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "not compared (not tensors): probability" in " ".join(result.stdout.split())
    nodes = [helper.make_node("Log", ["x"], ["a"], name="log"), helper.make_node("Relu", ["a"], ["b"], name="r"),
             helper.make_node("Neg", ["b"], ["y"], name="n")]
    logs = _model(tmp_path / "log.onnx", nodes, [helper.make_tensor_value_info("x", 1, ["batch", 8])],
                  [helper.make_tensor_value_info("y", 1, ["batch", 8])])
    result = cli("split", logs, "--offload", "0.3", "-o", tmp_path / "p2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "compared nothing" not in result.stdout  # half its outputs are numbers
    nodes = [helper.make_node("Abs", ["x"], ["a"], name="abs"), helper.make_node("Neg", ["a"], ["b"], name="neg"),
             helper.make_node("Log", ["b"], ["y"], name="log")]  # log of -|x|: NaN everywhere (or -inf at 0)
    nans = _model(tmp_path / "nan.onnx", nodes, [helper.make_tensor_value_info("x", 1, ["batch", 8])],
                  [helper.make_tensor_value_info("y", 1, ["batch", 8])])
    result = cli("split", nans, "--offload", "0.3", "-o", tmp_path / "p3")
    assert result.exit_code == 0 and "so the verification compared nothing" in " ".join(result.stdout.split())


def test_nan_on_one_side_only_is_a_difference():
    from staronnx_cli.split.verify import _difference

    assert _difference(np.array([np.nan, 1.0]), np.array([np.nan, 1.5])) == 0.5
    assert np.isnan(_difference(np.array([np.nan, 1.0]), np.array([0.0, 1.0])))
    assert np.isnan(_difference(np.array([1.0]), np.array([1.0, 2.0])))


@pytest.mark.parametrize("dims, says", [
    (["seq", 8, 64], "a first dimension named 'seq'"),  # its batch fixed at 8: the sequence swept as N
    (["src_len", "bsz", 64], "its batch dimension ('bsz') on axis 1, after 'src_len'"),  # fairseq
    (["S", 8, 64], "a first dimension named 'S'"),
    (["16", "bsz", 64], "its batch dimension ('bsz') on axis 1"),
])
def test_sequence_first_exports_are_refused_by_their_names(cli, tmp_path, dims, says):
    shape = [int(d) if d.isdigit() else d for d in map(str, dims)]
    model = _model(tmp_path / "m.onnx", [helper.make_node("Relu", ["src"], ["y"], name="r")],
                   [helper.make_tensor_value_info("src", 1, shape)], [helper.make_tensor_value_info("y", 1, shape)])
    assert_one_line_error(cli("profile", model, "-o", tmp_path / "c.csv"), says, "export the model batch-first")


def test_a_tf2onnx_input_name_with_a_colon_takes_the_shape_it_is_told(cli, tmp_path):
    """The message said --shape input_ids:0:SIZE, then refused it."""
    x = helper.make_tensor_value_info("input_ids:0", 1, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", 1, ["batch", "seq"])
    model = _model(tmp_path / "tf.onnx", [helper.make_node("Relu", ["input_ids:0"], ["y"], name="r")], [x], [y])
    assert_one_line_error(cli("profile", model, "-o", tmp_path / "c.csv"), "--shape input_ids:0:SIZE")
    done = cli("profile", model, "--shape", "input_ids:0:16", "--runs", "2", "--warmup", "0", "--no-overhead", "-o",
               tmp_path / "c.csv")
    assert done.exit_code == 0, done.stdout + done.stderr


def _sequence_model(path):
    x = helper.make_tensor_value_info("input_ids", 1, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", 1, ["batch", "seq"])
    return _model(path, [helper.make_node("Relu", ["input_ids"], ["y"], name="r")], [x], [y])


def test_a_mix_or_a_campaign_without_the_shape_its_model_needs_says_so_before_any_point(cli, tmp_path):
    """A campaign sent the model to its nodes, which refused it three times ('resumed on another node'); a mix's
    refusal did not name its model nor its shape key."""
    _sequence_model(tmp_path / "bert.onnx")
    mix = tmp_path / "mix.toml"
    mix.write_text('[[model]]\nname = "long"\nmodel = "bert.onnx"\nrate = 50\nbatch = 1\n')
    assert_one_line_error(cli("sweep", "--mix", mix, "--scale", "1", "-o", tmp_path / "m"), "model 'long'",
                          "--shape input_ids:SIZE", "in a mix: shape = [\"INPUT:SIZES\"] in its [[model]]")
    campaign = tmp_path / "c.toml"
    campaign.write_text('name = "t"\n[kinds.small]\nresources = { small = 1 }\n[[sweep]]\nname = "bert"\n'
                        'target = "bert.onnx"\nkinds = ["small"]\n')
    assert_one_line_error(cli("fleet", campaign, "-o", tmp_path / "f", "--ray-address", "127.0.0.1:9"),
                          "campaign: [[sweep]] bert: input 'input_ids' has free dimensions", "shape input_ids:SIZE")
    assert not (tmp_path / "f" / "ray.log").exists()


def test_a_saturation_never_reached_in_the_grid_is_drawn_as_a_lower_bound():
    """The verdict said 'at least 400 q/s' where the figures drew 'rho_max 400 q/s (saturation)'."""
    from test_analysis_edges import run_of

    from staronnx_cli.plots import figures

    never = run_of([(1, 100, 10, 5.0, 0.1, False), (1, 400, 10, 6.0, 0.1, False)])
    legend = [t.get_text() for t in figures.envelope_figure(never).axes[0].get_legend().get_texts()]
    assert "rho_max >= 400 q/s (never congested: saturation above)" in legend
    legend = [t.get_text() for t in figures.compare_figure([never], ["whole"]).axes[0].get_legend().get_texts()]
    assert legend == ["whole: rho_max >= 400 q/s"]
    bounded = run_of([(1, 100, 10, 5.0, 0.1, False), (1, 400, 10, None, None, True)])
    legend = [t.get_text() for t in figures.envelope_figure(bounded).axes[0].get_legend().get_texts()]
    assert "rho_max 100 q/s (saturation)" in legend


def test_split_of_an_fp16_model_on_cpu_says_its_times_are_estimates(cli, tmp_path):
    import pandas as pd

    from staronnx_cli.split.splitter import Costs, _estimated

    def row(node, us, kernels, how="fused"):
        return {"node": node, "device": "cpu:1", "batch_size": 1, "mean_us": us, "kernels": kernels, "how": how}

    region = "cast_x cast_w mm0 mm1 relu"
    table = pd.DataFrame([row("mm0", 30.0, region), row("relu", 1.0, region), row("mm1", 60.0, region)])
    said = _estimated(Costs({}, "cpu:1", "cpu", table, ""))
    assert len(said) == 1 and said[0].startswith("batch 1: 100% of the node time is one group of 5 kernels")
    assert _estimated(Costs({}, "cpu:1", "cpu", table.drop(columns=["kernels"]), "")) == []  # an older costs file


def test_a_fleet_tells_two_models_of_one_file_name_apart():
    """hf_a/model.onnx (a BERT) and hf_b/model.onnx (an MLP) were one 'model': the MLP's latencies answered for the
    BERT's rates. Grouped by their sha256 now, each named with its sweeps; a model and its split stay together."""
    from test_analysis_edges import run_of

    from staronnx_cli.analysis.fleet import FleetRun, fleet_answer

    def of(sha, latency, parts=1):
        run = run_of([(1, 50, 10, latency, 0.1, False)], parts=parts, model_name="model")
        run.meta = replace(run.meta, model_sha256=sha)
        return run

    bert, mlp, mlp_split = of("bert", 9.0), of("mlp", 0.2), of("mlp", 0.1, parts=2)
    said = fleet_answer([FleetRun("bert", "here", bert), FleetRun("mlp", "here", mlp),
                         FleetRun("mlp_split", "here", mlp_split)])
    assert "model (bert) at 50 q/s: here (bert) at 9.00 ms worst-case." in said
    assert "model (mlp, mlp_split) at 50 q/s: here (mlp_split) at 0.100 ms worst-case." in said


def test_a_campaign_names_a_plan_by_its_source_model_not_its_folder(tmp_path):
    """Two plans in folders named 'plan' (the README's name) were both 'plan' in the fleet's answer."""
    import json

    from staronnx_cli.fleet.campaign import SweepSpec

    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "plan.json").write_text(json.dumps({"source_model": "/models/bert.onnx"}))
    spec = SweepSpec("bert_split", "plan", ("small",))
    assert spec.settings(tmp_path / "plan").model_name == "bert"
    assert spec.settings().model_name == "plan"  # checked before the plan is at hand: its target's name


@pytest.mark.parametrize("hot_path", ["", "python"])
def test_a_batch_that_onnx_runtime_refuses_is_said_once_with_the_fix_not_in_its_raw_log_too(tmp_path, hot_path):
    """An export at batch 1 that baked the batch into a Reshape fails every batch of 2: the native core's sessions
    also printed ONNX Runtime's raw '[E:onnxruntime:...]' lines on stderr beside staronnx's own words."""
    import os
    import subprocess
    import sys

    import pandas as pd

    x = helper.make_tensor_value_info("x", 1, ["batch", 4, 16])
    y = helper.make_tensor_value_info("y", 1, ["batch", 64])
    shape = numpy_helper.from_array(np.array([1, 64], np.int64), "shape")
    model = _model(tmp_path / "baked.onnx", [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
                   [x], [y], [shape])
    done = subprocess.run([sys.executable, "-m", "staronnx_cli", "sweep", str(model), "--workers", "cpu:1x1",
                           "--batch", "1,2", "--rate", "50", "--batches", "5", "--warmup", "1", "-o",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", "STARONNX_HOT_PATH": hot_path})
    points = pd.read_csv(tmp_path / "run" / "points.csv")
    assert points.query("batch_size == 2").errors.str.contains("Reshape").all(), points.errors.tolist()
    assert "does --batch 1 run? then re-export with a dynamic batch axis" in done.stdout, done.stdout[-600:]
    assert "E:onnxruntime" not in done.stderr + done.stdout, done.stderr[-600:]


def test_costs_of_another_shape_are_refused_naming_the_file_they_profiled(cli, tmp_path):
    """split --shape input_ids:48 --costs (profiled at 24) said only 'another model (sha256 ...)', and its fix lacked
    the --shape."""
    x = helper.make_tensor_value_info("input_ids", 1, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", 1, ["batch", "seq"])
    model = _model(tmp_path / "bert.onnx", [helper.make_node("Relu", ["input_ids"], ["a"], name="r"),
                                            helper.make_node("Neg", ["a"], ["y"], name="n")], [x], [y])
    costs = tmp_path / "c24.csv"
    assert cli("profile", model, "--shape", "input_ids:24", "--runs", "2", "--warmup", "0", "--no-overhead", "-o",
               costs).exit_code == 0
    assert_one_line_error(cli("split", model, "--shape", "input_ids:48", "--costs", costs, "-o", tmp_path / "p"),
                          "it profiled bert.input_ids-24.onnx", "with the same --shape as here")


def test_token_ids_are_drawn_over_the_rows_of_the_table_they_index(cli, tmp_path):
    """Integers were 0 or 1 always: a RoBERTa's one-row token-type table was asked for its row 1 (ONNX Runtime
    refused every run), and token ids never left the first two rows of a 100-row vocabulary."""
    from staronnx_cli import modelio

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", 8])
    types = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", 8])
    y = helper.make_tensor_value_info("y", 1, ["batch", 8, 4])
    rng = np.random.default_rng(0)
    vocab = numpy_helper.from_array(rng.standard_normal((100, 4)).astype(np.float32), "vocab")
    one_row = numpy_helper.from_array(rng.standard_normal((1, 4)).astype(np.float32), "types")
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids64"], name="cast", to=TensorProto.INT64),
             helper.make_node("Gather", ["vocab", "ids64"], ["e"], name="words"),
             helper.make_node("Gather", ["types", "token_type_ids"], ["t"], name="kinds"),
             helper.make_node("Add", ["e", "t"], ["y"], name="add")]
    model = _model(tmp_path / "roberta.onnx", nodes, [ids, types], [y], [vocab, one_row])
    specs = {s.name: s for s in modelio.input_specs(onnx.load(model))}
    assert (specs["input_ids"].high, specs["token_type_ids"].high) == (100, 1)
    feeds = modelio.random_inputs(list(specs.values()), 64)
    assert feeds["input_ids"].max() > 1 and feeds["input_ids"].max() < 100 and not feeds["token_type_ids"].any()
    done = cli("profile", model, "--batch", "1,2", "--runs", "2", "--warmup", "0", "--no-overhead", "-o",
               tmp_path / "c.csv")
    assert done.exit_code == 0, done.stdout + done.stderr


def test_a_report_of_two_sequence_lengths_heads_each_with_its_shape(cli, tmp_path):
    """Two runs of one model at --shape 16 and 64 got the same section heading ('## staronnx cpu:1x1 dmda')."""
    model = _sequence_model(tmp_path / "bert.onnx")
    for size in (8, 16):
        done = cli("sweep", model, "--shape", f"input_ids:{size}", "--workers", "cpu:1x1", "--batch", "1", "--rate",
                   "50", "--batches", "5", "--warmup", "1", "-o", tmp_path / f"r{size}")
        assert done.exit_code == 0, done.stdout + done.stderr
    assert cli("report", tmp_path / "r8", tmp_path / "r16", "-o", tmp_path / "report.md").exit_code == 0
    headings = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("## bert")]
    assert len(headings) == 2 and "bert.input_ids-8" in headings[0] and "bert.input_ids-16" in headings[1], headings


def test_a_shaped_copy_is_named_as_the_user_types_it(tmp_path, monkeypatch):
    """advise said 'to try one anyway: staronnx split $CACHE/shaped/.../bert.input_ids-24.onnx ...' where the user
    typed bert.onnx --shape input_ids:24."""
    from staronnx_cli.shapes import shaped_model
    from staronnx_cli.zoo.names import typed_name

    monkeypatch.setenv("STARONNX_CACHE", str(tmp_path / "cache"))
    model = _sequence_model(tmp_path / "bert.onnx")
    copy = shaped_model(model, ["input_ids:24"])
    assert typed_name(copy) == f"{model} --shape input_ids:24"
    assert typed_name(model) == str(model)


def _thresholded(path):
    """x [batch, 16] beside a scalar threshold and a [16] scale read only at the end (the last part of a split)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), f"w{i}") for i in range(4)]
    nodes = [helper.make_node("Sub", ["x", "thr"], ["s"], name="sub"), helper.make_node("Relu", ["s"], ["t"], name="r")]
    for i in range(4):
        nodes += [helper.make_node("MatMul", ["t" if i == 0 else f"h{i - 1}", f"w{i}"], [f"m{i}"], name=f"mm{i}"),
                  helper.make_node("Tanh", [f"m{i}"], [f"h{i}"], name=f"tanh{i}")]
    nodes.append(helper.make_node("Mul", ["h3", "scale"], ["y"], name="mul"))
    inputs = [helper.make_tensor_value_info("x", 1, ["batch", 16]), helper.make_tensor_value_info("thr", 1, []),
              helper.make_tensor_value_info("scale", 1, [16])]
    return _model(path, nodes, inputs, [helper.make_tensor_value_info("y", 1, ["batch", 16])], weights)


def test_fixed_shape_inputs_beside_a_batched_one_are_given_whole_and_alone_still_refused(tmp_path):
    from staronnx_cli import modelio

    specs = modelio.input_specs(onnx.load(_thresholded(tmp_path / "t.onnx")))
    assert [(s.name, s.shape, s.batched) for s in specs] == [("x", (16,), True), ("thr", (), False),
                                                             ("scale", (16,), False)]
    feeds = modelio.random_inputs(specs, 4)
    assert [feeds[n].shape for n in ("x", "thr", "scale")] == [(4, 16), (), (16,)]
    one = modelio.random_inputs(specs, 1)  # every batch size measures the same model: the same threshold and scale
    assert one["thr"] == feeds["thr"] and (one["scale"] == feeds["scale"]).all() and (one["x"] == feeds["x"][:1]).all()
    k = modelio.InputSpec("k", np.dtype(np.int64), (1,), "", 2, batched=False)
    assert modelio.random_inputs([k], 8)["k"].tolist() == [1]  # a TopK's k: 0 would ask for nothing
    batch = modelio.leading_rows(feeds, 3, modelio.whole_inputs(specs))
    assert [batch[n].shape for n in ("x", "thr", "scale")] == [(3, 16), (), (16,)]
    with pytest.raises(Exception, match=r"input 'thr' has a fixed shape \[\], nothing to fix: drop this --shape"):
        from staronnx_cli.shapes import shaped_model

        shaped_model(tmp_path / "t.onnx", ["thr:4"])
    assert shaped_model(tmp_path / "t.onnx", ["scale:16"]) == tmp_path / "t.onnx"  # its own sizes: nothing to do
    alone = _model(tmp_path / "alone.onnx", [helper.make_node("Relu", ["thr"], ["y"], name="r")],
                   [helper.make_tensor_value_info("thr", 1, [])], [helper.make_tensor_value_info("y", 1, [])])
    with pytest.raises(Exception, match="no other input has one"):
        modelio.input_specs(onnx.load(alone))


@pytest.mark.parametrize("hot_path", ["", "python"])
def test_a_split_whose_last_part_reads_a_whole_input_is_swept_on_either_hot_path(cli, tmp_path, hot_path,
                                                                               monkeypatch):
    """The Python scheduler fed a plan's model inputs from its first part only: 'scale', read by the last part
    alone, was a KeyError that failed every point; the native core took only inputs with a batch axis."""
    import pandas as pd

    monkeypatch.setenv("STARONNX_HOT_PATH", hot_path)
    model = _thresholded(tmp_path / "t.onnx")
    profiled = cli("profile", model, "--batch", "1,2", "--runs", "3", "-o", tmp_path / "costs")
    assert profiled.exit_code == 0, profiled.output
    assert "'scale', 'thr' have no batch axis: each batch gets them whole" in profiled.output
    split = cli("split", model, "--costs", tmp_path / "costs", "--parts", "2", "--offload", "0.5", "-o",
                tmp_path / "plan")
    assert split.exit_code == 0, split.output
    firsts = {i.name for i in onnx.load(tmp_path / "plan" / "part_0.onnx").graph.input}
    assert "scale" in {i.name for i in onnx.load(tmp_path / "plan" / "part_1.onnx").graph.input} - firsts
    done = cli("sweep", tmp_path / "plan", "--workers", "cpu:1x1,cpu:1x1", "--batch", "1,3", "--rate", "50",
               "--batches", "5", "--warmup", "1", "-o", tmp_path / "run")
    assert done.exit_code == 0, done.output
    points = pd.read_csv(tmp_path / "run" / "points.csv")
    assert points.errors.isna().all() and not points.congested.any(), points.to_dict("records")


def test_native_serves_a_whole_input_and_triton_refuses_it(cli, tmp_path):
    import pandas as pd

    model = _thresholded(tmp_path / "t.onnx")
    done = cli("sweep", model, "--system", "native", "--workers", "cpu:1x1", "--batch", "2", "--rate", "50",
               "--batches", "5", "--warmup", "1", "-o", tmp_path / "run")
    assert done.exit_code == 0, done.output
    assert pd.read_csv(tmp_path / "run" / "points.csv").errors.isna().all()
    refused = cli("sweep", model, "--system", "triton", "--workers", "cpu:1x1", "--batch", "2", "--rate", "50",
                  "-o", tmp_path / "triton")
    assert_one_line_error(refused, "input 'thr' has no batch axis")


@pytest.mark.parametrize("names", [["n", "n"], ["", "r"], ["a", "", "a"]])
def test_the_fix_said_for_unnamed_or_twice_named_nodes_works_when_followed(names):
    """The snippet the line gives, run as written: it named only the unnamed nodes, so a name used twice stayed."""
    import re

    from staronnx_cli import modelio
    from staronnx_cli.errors import UserError

    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"], name=name)
             for i, name in enumerate(names)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["batch", 4])],
                              [helper.make_tensor_value_info(f"t{len(names) - 1}", 1, ["batch", 4])])
    m = helper.make_model(graph)
    with pytest.raises(UserError) as caught:
        modelio.check_node_names(m)
    snippet = re.search(r"in Python: (.+) \(then onnx.save\)", str(caught.value)).group(1)
    exec(snippet.replace(": ", ":\n    ", 1), {"m": m})
    modelio.check_node_names(m)


def test_a_model_saved_by_an_onnx_newer_than_onnx_runtime_names_the_ir_version_to_set(cli, tmp_path):
    path = tmp_path / "new.onnx"
    model = onnx.load(_model(path, [helper.make_node("Relu", ["x"], ["y"], name="r")],
                             [helper.make_tensor_value_info("x", 1, ["batch", 4])],
                             [helper.make_tensor_value_info("y", 1, ["batch", 4])]))
    model.ir_version = 99
    onnx.save(model, path)
    refused = cli("profile", path, "--runs", "1", "-o", tmp_path / "c.csv")
    assert_one_line_error(refused, "set m.ir_version = ", "before onnx.save, or upgrade onnxruntime")


def _fp16_chain(path):
    """As a user's float16 export: x -> MatMul -> Relu -> MatMul, weights of unit scale (outputs near 100)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float16), name)
               for name, shape in (("w1", (64, 64)), ("w2", (64, 16)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"], name="act"), helper.make_node("MatMul", ["a1", "w2"], ["y"],
                                                                                  name="fc2")]
    return _model(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 64])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["batch", 16])], weights)


def test_a_float16_split_is_verified_within_float16s_own_precision_and_a_failed_plan_is_kept_not_swept(
        cli, tmp_path, monkeypatch):
    """1e-4 of the largest output is below one float16 step: every split of a float16 model failed verification
    (advise dropped them all), and 'the plan is kept for inspection' was deleted with the rest."""
    from staronnx_cli.split import splitter

    model = _fp16_chain(tmp_path / "half.onnx")
    done = cli("split", model, "--method", "topo", "--offload", "0.5", "-o", tmp_path / "plan")
    assert done.exit_code == 0, done.output
    verification = json.loads((tmp_path / "plan" / "plan.json").read_text())["verification"]
    assert verification["passed"] and verification["output_eps"] == float(np.finfo(np.float16).eps)
    real = splitter.verify
    monkeypatch.setattr(splitter, "verify", lambda *a, **k: {**real(*a, **k), "max_abs_diff": 1e9})
    failed = cli("split", model, "--method", "topo", "--offload", "0.5", "-o", tmp_path / "bad")
    assert_one_line_error(failed, "the plan is kept in", "--verify-tolerance")
    assert (tmp_path / "bad" / "plan.json").exists() and (tmp_path / "bad" / "part_0.onnx").exists()
    from staronnx_cli.advise.targets import _made

    assert _made(tmp_path / "plan") and not _made(tmp_path / "bad")  # advise splits a failed cached plan again
    assert_one_line_error(cli("sweep", tmp_path / "bad", "--workers", "cpu:1x1,cpu:1x1", "-o", tmp_path / "run"),
                          "failed its verification", "--no-verify")
    assert_one_line_error(cli("split", model, "--verify-tolerance", "0", "-o", tmp_path / "z"), "--verify-tolerance 0")


def test_a_model_output_a_later_part_reads_too_is_still_returned_by_the_workers(cli, tmp_path):
    """The Python scheduler (GPU workers) copied back to the host only outputs no part reads: a model output that a
    later part also reads (BERT's hidden states beside its pooled output) stayed on the device, work a server does."""
    from staronnx_cli.runtime.executors import ExecutorOptions, ThreadExecutor
    from staronnx_cli.runtime.loop import RealLoop
    from staronnx_cli.runtime.workers import parse_workers
    from staronnx_cli.systems.target import load_target

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), f"w{i}") for i in range(4)]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i - 1}", f"w{i}"], [f"h{i}"], name=f"mm{i}")
             for i in range(4)]
    model = _model(tmp_path / "m.onnx", nodes, [helper.make_tensor_value_info("x", 1, ["batch", 16])],
                   [helper.make_tensor_value_info("h1", 1, ["batch", 16]),
                    helper.make_tensor_value_info("h3", 1, ["batch", 16])], weights)
    assert cli("split", model, "--method", "topo", "--offload", "0.5", "-o", tmp_path / "plan").exit_code == 0
    target = load_target(tmp_path / "plan")
    assert set(target.graph.model_outputs) == {"h1", "h3"}
    executor = ThreadExecutor(RealLoop(), parse_workers("cpu:1x1", [0], False), target.part_files, 1, None,
                              ExecutorOptions(model_outputs=target.graph.model_outputs))
    try:
        assert executor.final_outputs == {"h1", "h3"}
    finally:
        executor.close()
