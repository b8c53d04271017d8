"""Mutation round 7 (today's --input-data, inputs given whole, control-flow nodes timed alone, export, float16
verification, the cores caveat): each test holds a behaviour a surviving mutant changed without any test noticing.
Hand-made tiny models."""

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from staronnx_cli.errors import UserError
from staronnx_cli.inputdata import check_input_data, parse_input_data
from staronnx_cli.modelio import InputSpec


def _spec(name, shape, dtype=np.float32, batched=True):
    return InputSpec(name, np.dtype(dtype), shape, "batch" if batched else "", 2, batched)


def _model(nodes, inputs, outputs, weights=(), path=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(weights))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if path is not None:
        onnx.save(model, path)
    return model


def _value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


# --- inputdata.py

def test_a_json_file_beyond_the_json_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """A JSON file is parsed whole into Python lists: beyond the limit, one line pointing to .npz (not minutes of
    parsing and gigabytes of lists)."""
    from staronnx_cli import inputdata

    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": [{"x": [1.0, 2.0]}]}))
    monkeypatch.setattr(inputdata, "MAX_JSON_BYTES", 8)
    with pytest.raises(UserError, match="MiB of JSON, more than the .* give the samples as a .npz"):
        parse_input_data(str(path))


def test_a_samples_file_with_an_upper_case_suffix_is_read(tmp_path):
    """D.NPZ (as Windows tools write names) is a .npz like any other."""
    np.savez(tmp_path / "d.npz", x=np.arange(4, dtype=np.float32).reshape(2, 2))
    (tmp_path / "d.npz").rename(tmp_path / "D.NPZ")
    feeds = parse_input_data(str(tmp_path / "D.NPZ")).feeds([_spec("x", (2,))], 3)
    assert feeds["x"].tolist() == [[0, 1], [2, 3], [0, 1]]


def test_a_json_file_of_no_samples_is_refused_when_given(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": []}))
    with pytest.raises(UserError, match='has an empty "data" list'):
        parse_input_data(str(path))


def test_a_json_mask_of_true_and_false_feeds_a_bool_input(tmp_path):
    """perf_analyzer's JSON writes a BOOL input as true/false: those are booleans, not values refused as
    'not numbers or booleans'."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": [{"m": [True, False]}, {"m": [False, True]}]}))
    feeds = parse_input_data(str(path)).feeds([_spec("m", (2,), np.bool_)], 3)
    assert feeds["m"].dtype == np.bool_ and feeds["m"].tolist() == [[True, False], [False, True], [True, False]]


@pytest.mark.parametrize("values, dtype, message", [
    ([[5, -1]], np.uint8, "'ids' holds int64 values from -1 to 5, the model takes uint8"),  # -1 would wrap to 255
    ([[0, 2]], np.bool_, "'ids' holds int64 values from 0 to 2, the model takes bool"),  # only 0 and 1 are a mask
    (np.zeros((0, 2), np.int64), np.int64, "'ids' holds no sample (shape (0, 2))"),  # one line, not numpy's error
])
def test_integers_that_do_not_fit_the_input_or_no_sample_at_all_are_one_line(tmp_path, values, dtype, message):
    np.savez(tmp_path / "ids.npz", ids=np.asarray(values, np.int64))
    with pytest.raises(UserError) as caught:
        check_input_data(parse_input_data(str(tmp_path / "ids.npz")), [_spec("ids", (2,), dtype)])
    assert message in str(caught.value)


# --- modelio.py: inputs given whole

def test_which_fixed_inputs_are_given_whole_and_what_they_are_fed():
    """A [1] k beside a batched input is a TopK's k (whole); a first dimension written as 0 is a batch, not an empty
    table; an input without a shape is refused, not fed as a scalar; a whole integer indexing a one-row table is 0
    (1 is out of its bounds), a whole bool is set, a whole float is drawn per name and seed."""
    from staronnx_cli import modelio

    table = numpy_helper.from_array(np.ones((1, 4), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "row"], ["g"], name="gather"),
             helper.make_node("Add", ["x", "g"], ["y"], name="add")]
    inputs = [_value("x", ["batch", 4]), _value("row", [], TensorProto.INT64), _value("k", [1], TensorProto.INT64),
              _value("zero", [0, 4]), _value("flag", [], TensorProto.BOOL), _value("a", []), _value("b", [])]
    specs = modelio.input_specs(_model(nodes, inputs, [_value("y", ["batch", 4])], [table]))
    assert [(s.name, s.shape, s.batched) for s in specs] == [
        ("x", (4,), True), ("row", (), False), ("k", (1,), False), ("zero", (4,), True), ("flag", (), False),
        ("a", (), False), ("b", (), False)]
    feeds = modelio.random_inputs(specs, 2)
    assert feeds["row"].tolist() == 0 and feeds["k"].tolist() == [1] and feeds["flag"].tolist() is True
    other_seed = modelio.random_inputs(specs, 2, seed=1)
    assert len({float(feeds["a"]), float(feeds["b"]), float(other_seed["a"]), 1.0}) == 4
    shapeless = _model([helper.make_node("Add", ["x", "t"], ["y"], name="add")], [_value("x", ["batch", 4]),
                       _value("t", None)], [_value("y", ["batch", 4])])
    with pytest.raises(UserError, match="input 't' has no batch dimension \\(it is a scalar or has no shape\\)"):
        modelio.input_specs(shapeless)


def _plan_parts(tmp_path):
    """part_0: x - thr, x passed on as an output too; part_1: that times scale, plus x. The model's inputs: x and
    thr (part_0's), scale (read by part_1 alone)."""
    first = _model([helper.make_node("Sub", ["x", "thr"], ["s"], name="sub")], [_value("x", ["batch", 4]),
                   _value("thr", [])], [_value("s", ["batch", 4]), _value("x", ["batch", 4])],
                   path=tmp_path / "part_0.onnx")
    second = _model([helper.make_node("Mul", ["s", "scale"], ["a"], name="mul"),
                     helper.make_node("Add", ["a", "x"], ["y"], name="add")],
                    [_value("s", ["batch", 4]), _value("x", ["batch", 4]), _value("scale", [4])],
                    [_value("y", ["batch", 4])], path=tmp_path / "part_1.onnx")
    return first, second


def test_a_plan_s_inputs_are_the_model_s_only_and_a_samples_file_is_checked_against_all_of_them(tmp_path):
    """An input a part passes on as its own output is still the model's (it was dropped, so no batch fed it); a
    value an earlier part makes is no model input, nor asked of a part reading none; a samples file for a plan
    holds the inputs of its later parts too (a 'scale' read by the last part was refused as 'not an input')."""
    from staronnx_cli import modelio
    from staronnx_cli.sweep.checks import check_target_data

    first, second = _plan_parts(tmp_path)
    specs = modelio.plan_input_specs([first, second])
    assert [(s.name, s.batched) for s in specs] == [("x", True), ("thr", False), ("scale", False)]
    last = _model([helper.make_node("Relu", ["s"], ["y"], name="r")], [_value("s", ["batch", 4])],
                  [_value("y", ["batch", 4])])  # reads no model input: nothing asked of it
    assert [s.name for s in modelio.plan_input_specs([first, last])] == ["x", "thr"]
    np.savez(tmp_path / "d.npz", x=np.ones((2, 4)), thr=np.zeros(()), scale=np.ones(4))
    target = SimpleNamespace(part_files=[tmp_path / "part_0.onnx", tmp_path / "part_1.onnx"])
    check_target_data(parse_input_data(str(tmp_path / "d.npz")), target)


# --- profile/controlflow.py

def _two_loops():
    """loop_a reads the graph input x itself (no trip count: an empty optional input; its body adds a weight of its
    own, 'step'); loop_b reads loop_a's output h, which is a model output too. Each runs 3 times."""
    def body(name):
        step = numpy_helper.from_array(np.full(4, 0.5, np.float32), "step")
        return helper.make_graph(
            [helper.make_node("Add", ["acc_in", "step"], ["acc_out"], name=f"{name}_add"),
             helper.make_node("Less", ["i", "three"], ["cond_out"], name=f"{name}_less")],
            f"{name}_body", [_value("i", [], TensorProto.INT64), _value("cond_in", [], TensorProto.BOOL),
                             _value("acc_in", None)],
            [_value("cond_out", [], TensorProto.BOOL), _value("acc_out", None)], [step])

    weights = [numpy_helper.from_array(np.array(True), "go"), numpy_helper.from_array(np.array(2, np.int64), "three")]
    nodes = [helper.make_node("Loop", ["", "go", "x"], ["h"], name="loop_a", body=body("a")),
             helper.make_node("Loop", ["", "go", "h"], ["y"], name="loop_b", body=body("b"))]
    return _model(nodes, [_value("x", ["batch", 4])], [_value("y", ["batch", 4]), _value("h", ["batch", 4])], weights)


def test_what_a_loop_reads_leaves_out_its_body_s_own_weights_and_an_absent_optional_input():
    """'' (no trip count) and the body's own 'step' are no outer values: fed to the node alone they were a probe
    output ORT refuses, and every control-flow node kept its inflated profiled time."""
    from staronnx_cli.profile.controlflow import outer_reads

    model = _two_loops()
    assert outer_reads(model.graph.node[0]) == ["go", "x", "three"]


@pytest.mark.parametrize("first", ["slower alone", "not timed alone"])
def test_each_loop_is_timed_alone_whatever_the_one_before_it_and_inexact_rows_are_left(tmp_path, monkeypatch, first):
    """A loop reading a graph input takes it from the feeds, one reading a model output from the run's outputs (the
    probe adds neither); a loop slower alone, or failing alone, keeps its profiled time and the next is still
    corrected; a row not timed 'exact' is left as it is."""
    import onnxruntime as ort

    from staronnx_cli.profile import controlflow

    real, ran = controlflow.timed_alone, []

    def timed(model, node, values, options, runs, warmup):
        ran.append((node.name, {n: v.shape for n, v in values.items() if n in controlflow.fed_values(model, node)}))
        real(model, node, values, options, 1, 0)
        if node.name == "loop_a" and first == "not timed alone":
            raise RuntimeError("refused")
        return [5.0 if node.name == "loop_a" else 1.0] * runs

    monkeypatch.setattr(controlflow, "timed_alone", timed)
    model, feeds = _two_loops(), {"x": np.ones((2, 4), np.float32)}
    rows = [{"node": name, "how": "exact", "mean_us": 3.0, "median_us": 3.0, "std_us": 0.0}
            for name in ("loop_a", "loop_b")]
    notes = controlflow.correct_rows(rows, model, feeds, ort.SessionOptions(), 3, 1)
    assert ran == [("loop_a", {"x": (2, 4)}), ("loop_b", {"h": (2, 4)})]
    assert [(r["how"], r["mean_us"]) for r in rows] == [("exact", 3.0), ("alone", 1.0)]
    assert notes[-1].startswith("Loop 'loop_b': 3.0 us profiled") and len(notes) == (first == "not timed alone") + 1
    fused = [{"node": "loop_b", "how": "fused", "mean_us": 3.0, "median_us": 3.0, "std_us": 0.0}]
    assert controlflow.correct_rows(fused, model, feeds, ort.SessionOptions(), 3, 1) == [] and \
        fused[0]["how"] == "fused"


# --- results/export.py

def test_perf_analyzer_rows_leave_out_failed_points_sort_by_throughput_and_name_one_model_as_none():
    """A point with errors is no rate held; rows go by Inferences/Second (achieved, not offered); one model in a
    model column is a run of one model (no per-model file); a queue time half known is unknown, not a crash."""
    from staronnx_cli.results.export import perf_analyzer_tables

    points = pd.DataFrame({"batch_size": [1, 1, 1], "rate_qps": [20, 10, 30], "achieved_qps": [19.0, 9.5, 29.0],
                           "congested": [False, False, False], "errors": ["", "", "boom"], "model": ["a", "a", "a"],
                           "fill_ms": [0.5, 0.5, 0.5], "wait_ms": [None, 0.25, 0.25], "run_ms": [1.0, 1.0, 1.0],
                           "p50_latency_ms": [2.0, 1.0, 3.0]})
    assert perf_analyzer_tables(points) == {"N1": [["10", "9.5", 0, 0, 750, 0, 1000, 0, 0, 1000, "", "", ""],
                                                     ["20", "19.0", 0, 0, "", 0, 1000, 0, 0, 2000, "", "", ""]]}


# --- split: verification's tolerance

def test_the_tolerance_is_four_float_steps_of_the_output_scale_and_never_below_the_relative_one(tmp_path, monkeypatch):
    """float16 outputs near 100 are verified within 4 float16 steps of 100; outputs below 1 within the relative
    tolerance itself (it scales by the largest output only from 1 up)."""
    from staronnx_cli.inputdata import RANDOM
    from staronnx_cli.split import splitter

    eps16 = float(np.finfo(np.float16).eps)
    found = {}
    monkeypatch.setattr(splitter, "verify", lambda *a, **k: dict(found))
    monkeypatch.setattr(splitter, "write_plan", lambda plan, output: None)
    s = SimpleNamespace(model=tmp_path / "m.onnx", batch=2, input_data=RANDOM, check_tolerance=1e-4, output=tmp_path)
    for scale, eps, limit in ((100.0, eps16, 4 * eps16 * 100), (0.01, 0.0, 1e-4)):
        found.update(max_abs_diff=limit * 0.9, output_scale=scale, output_eps=eps)
        plan = SimpleNamespace(verification={})
        splitter._verify(s, plan, [])
        assert plan.verification["passed"] and plan.verification["tolerance"] == pytest.approx(limit)
    found.update(max_abs_diff=1.1e-4)
    with pytest.raises(splitter.VerificationFailed):
        splitter._verify(s, SimpleNamespace(verification={}), [])


def test_output_eps_is_the_coarsest_float_output_s_step_and_0_without_float_outputs(tmp_path):
    """A float16 output beside a float32 one sets the step (the finer one failed float16 splits); integer outputs
    alone have no rounding step (1.0 would tolerate 4 times the output scale)."""
    from staronnx_cli.split.verify import verify

    mixed = tmp_path / "mixed.onnx"
    _model([helper.make_node("Relu", ["x"], ["y"], name="r"), helper.make_node("Cast", ["y"], ["z"], name="c", to=10)],
           [_value("x", ["batch", 4])], [_value("y", ["batch", 4]), _value("z", ["batch", 4], TensorProto.FLOAT16)],
           path=mixed)
    assert verify(mixed, [mixed], 2)["output_eps"] == float(np.finfo(np.float16).eps)
    ints = tmp_path / "ints.onnx"
    _model([helper.make_node("Neg", ["x"], ["y"], name="n")], [_value("x", ["batch", 4], TensorProto.INT64)],
           [_value("y", ["batch", 4], TensorProto.INT64)], path=ints)
    assert verify(ints, [ints], 2)["output_eps"] == 0.0


# --- analysis/verdict.py, errors.py, advise/targets.py

def _run(cores, workers="cpu:1x1"):
    return SimpleNamespace(meta=SimpleNamespace(worker_cores=cores, workers=workers))


def test_the_cores_caveat_counts_distinct_cores_and_says_fewer_or_nothing():
    """Equal cores, a run that recorded none (older), or two workers pinned to one core: no caveat; a split on
    fewer cores than the whole model says 'fewer'."""
    from staronnx_cli.analysis.verdict import _cores_caveat

    one, two = {"cpu0": [0]}, {"cpu0": [0], "cpu1": [1]}
    assert _cores_caveat(_run(two), _run(two)) == ""
    assert _cores_caveat(_run(None), _run(two)) == "" and _cores_caveat(_run(one), _run(None)) == ""
    assert _cores_caveat(_run(one), _run({"cpu0": [0], "cpu1": [0]})) == ""
    assert _cores_caveat(_run(two), _run(one)).startswith(
        " The split ran on 1 cores, the whole model on 2: part of the difference is the fewer cores;")


def test_the_baked_batch_hint_is_for_batches_above_1_and_any_case_of_shape():
    from staronnx_cli.errors import baked_batch_hint

    assert baked_batch_hint(1, "shape mismatch") == ""  # --batch 1 already failed: 'does --batch 1 run?' is no fix
    assert "does --batch 1 run?" in baked_batch_hint(4, "Shape mismatch: {4,8} != {1,8}")


def test_the_ir_version_to_set_is_the_one_onnx_runtime_reads():
    from staronnx_cli.errors import ort_reason

    said = ort_reason(RuntimeError("Unsupported model IR version: 12, max supported IR version: 11"))
    assert "set m.ir_version = 11 before onnx.save" in said


def test_a_cached_plan_directory_without_a_readable_plan_json_is_split_again(tmp_path):
    """A split killed before it wrote plan.json (or a plan.json cut short) left a directory: it is no plan to
    search."""
    from staronnx_cli.advise.targets import _made

    (tmp_path / "empty").mkdir()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "plan.json").write_text('{"verification": {"pas')
    assert not _made(tmp_path / "empty") and not _made(tmp_path / "cut") and not _made(tmp_path / "absent")



def test_a_plan_draws_token_ids_within_the_smallest_table_any_part_indexes():
    """ids index a 10-row table in part 0 and a 5-row one in part 1: the whole model draws them below 5, the plan
    took part 0's 10, so part 1's Gather went out of bounds and every point of the plan failed."""
    from onnx import helper, numpy_helper

    from staronnx_cli import modelio

    def part(table_rows, out):
        table = numpy_helper.from_array(np.zeros((table_rows, 4), np.float32), f"t{table_rows}")
        graph = helper.make_graph([helper.make_node("Gather", [f"t{table_rows}", "ids"], [out], name=out)], "p",
                                  [helper.make_tensor_value_info("ids", 7, ["batch", 3])],
                                  [helper.make_tensor_value_info(out, 1, ["batch", 3, 4])], [table])
        return helper.make_model(graph)

    (spec,) = modelio.plan_input_specs([part(10, "a"), part(5, "b")])
    assert spec.high == 5
    (alone,) = modelio.plan_input_specs([part(10, "a")])
    assert alone.high == 10
