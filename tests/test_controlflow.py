"""Control-flow nodes (Loop, If) timed alone, unprofiled: ORT's profiler times every node run of their bodies and
that cost landed in their own time (a Loop 803 us profiled in a model that runs in 158 us; split moved 0.85 of the
time where the parts showed 0.41)."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from staronnx_cli.profile.controlflow import alone, fed_values, outer_reads


def _loop_model(path):
    """x [batch, 8] -> MatMul -> a Loop of 30 steps whose body adds the outer 'h' (an implicit input) and a
    weight of the outer graph -> y."""
    w = numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")
    bias = numpy_helper.from_array(np.full(8, 0.01, np.float32), "bias")
    trip = numpy_helper.from_array(np.array(30, np.int64), "trip")
    cond = numpy_helper.from_array(np.array(True), "cond")
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "h"], ["a"], name="body_add"),
         helper.make_node("Add", ["a", "bias"], ["acc_out"], name="body_bias"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond")],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Loop", ["trip", "cond", "h"], ["y"], name="loop", body=body)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
                              [w, bias, trip, cond])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_node_alone_reads_its_inputs_and_the_outer_values_its_body_uses(tmp_path):
    model = onnx.load(_loop_model(tmp_path / "loop.onnx"))
    loop = model.graph.node[1]
    assert outer_reads(loop) == ["trip", "cond", "h", "bias"]  # h twice (input and implicit): once
    assert fed_values(model, loop) == ["h"]  # the weights stay weights
    single = alone(model, loop, {"h": np.ones((2, 8), np.float32)})
    assert [i.name for i in single.graph.input] == ["h"] and {i.name for i in single.graph.initializer} == \
        {"trip", "cond", "bias"}
    import onnxruntime as ort

    (y,) = ort.InferenceSession(single.SerializeToString()).run(None, {"h": np.ones((2, 8), np.float32)})
    assert np.allclose(y, 1 + 30 * 1.01)  # h, then h and the bias added 30 times


def test_profile_times_a_loop_alone_and_says_so(cli, tmp_path, monkeypatch):
    from staronnx_cli.profile import controlflow

    real = controlflow.timed_alone
    ran = []

    def timed(model, node, values, options, runs, warmup):  # the real runs, a time below any profiled one
        ran.append((node.name, sorted(values), len(real(model, node, values, options, runs, warmup))))
        return [0.001] * runs

    monkeypatch.setattr(controlflow, "timed_alone", timed)
    model = _loop_model(tmp_path / "loop.onnx")
    done = cli("profile", model, "--batch", "1,2", "--runs", "3", "-o", tmp_path / "c.csv")
    assert done.exit_code == 0, done.output
    assert "Loop 'loop':" in done.output and "timed alone without it: that time kept" in done.output
    assert ran == [("loop", ["h"], 20)] * 2  # per batch size: its one fed value, at least 20 runs
    import pandas as pd

    costs = pd.read_csv(tmp_path / "c.csv")
    assert (costs.query("node == 'loop'").how == "alone").all() and (costs.query("node == 'mm'").how == "exact").all()
    meta = json.loads((tmp_path / "c.meta.json").read_text())
    assert all(any("Loop 'loop'" in n for n in b["notes"]) for b in meta["batches"].values())
    split = cli("split", model, "--costs", tmp_path / "c.csv", "--method", "topo", "--offload", "0.5", "-o",
                tmp_path / "plan")
    assert split.exit_code == 0, split.output  # costs of a node timed alone are measured, not estimates


def test_a_control_flow_node_slower_alone_keeps_its_profiled_time(tmp_path, monkeypatch):
    """Alone, a run also pays session.run's own microseconds (a body-less If: 6 us alone, 9.5 profiled): the
    profiled time stays where it is the lower."""
    import numpy as np
    import onnxruntime as ort

    from staronnx_cli.profile import controlflow

    model = onnx.load(_loop_model(tmp_path / "loop.onnx"))
    rows = [{"node": "loop", "how": "exact", "mean_us": 3.0, "median_us": 3.0, "std_us": 0.0}]
    monkeypatch.setattr(controlflow, "timed_alone", lambda *a: [5.0] * 20)
    assert controlflow.correct_rows(rows, model, {"x": np.ones((1, 8), np.float32)}, ort.SessionOptions(), 3, 1) == []
    assert rows[0]["mean_us"] == 3.0 and rows[0]["how"] == "exact"
