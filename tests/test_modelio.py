"""Loading user models: every mistake becomes a UserError that names the fix."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from staronnx_cli import modelio
from staronnx_cli.errors import UserError


def relu_model(input_shape, name="x"):
    graph = helper.make_graph([helper.make_node("Relu", [name], ["y"], name="relu")], "m",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, input_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match="not found.*zoo build"):
        modelio.load_model(tmp_path / "nope.onnx")
    with pytest.raises(UserError, match="is a directory"):
        modelio.load_model(tmp_path)


def test_text_file_named_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(UserError, match="not an ONNX model"):
        modelio.load_model(path)


@pytest.mark.parametrize("shape, message", [([1, 4], "fixed first dimension 1"), ([], "no batch dimension"),
                                            (["b", "seq"], r"free dimensions \['seq'\] besides the batch"),
                                            (["b", -1], "a dimension of size -1, which no tensor has")])
def test_inputs_without_a_usable_batch_dimension(shape, message):
    with pytest.raises(UserError, match=message):
        modelio.input_specs(relu_model(shape))


def test_input_specs_and_random_inputs():
    (spec,) = modelio.input_specs(relu_model(["N", 3, 5]))
    assert (spec.name, spec.shape, spec.batch_dim, spec.dtype) == ("x", (3, 5), "N", np.float32)
    feeds = modelio.random_inputs([spec], 4)
    assert feeds["x"].shape == (4, 3, 5) and feeds["x"].dtype == np.float32


def test_external_data_is_loaded_and_must_stay_in_the_models_folder(tmp_path):
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "m",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=0)
    loaded = modelio.load_model(folder / "m.onnx")
    assert numpy_helper.to_array(loaded.graph.initializer[0]).sum() == 16

    escaped = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for entry in escaped.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../elsewhere.data"
    onnx.save(escaped, str(folder / "escaped.onnx"))
    with pytest.raises(UserError, match="outside the model's folder"):
        modelio.load_model(folder / "escaped.onnx")


def test_tensor_bytes_by_node_fixes_the_batch():
    sizes = modelio.tensor_bytes_by_node(relu_model(["b", 3, 5]), batch=8)
    assert sizes == {"relu": 8 * 3 * 5 * 4}


def test_onnx_runtime_s_refusal_keeps_its_reason(tmp_path):
    """An opset ORT does not support: the first 200 characters held a C++ signature and ended before the reason
    ("Current official support for domain ai.onnx is till opset 26")."""
    import onnxruntime as ort

    from staronnx_cli.errors import ort_reason

    model = relu_model(["N", 4])
    model.opset_import[0].version = 99
    path = tmp_path / "op99.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(Exception) as caught:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reason = ort_reason(caught.value)
    assert reason.startswith(f"Load model from {path} failed: ") and "onnxruntime_src" not in reason
    assert "ai.onnx is till opset" in reason and len(reason) <= 330 and "\n" not in reason


def test_a_first_dimension_written_as_0_is_a_batch_and_bool_inputs_are_fed():
    """Some exporters write an unknown batch as 0; bool inputs (masks) are fed like int ones."""
    (spec,) = modelio.input_specs(relu_model([0, 4]))
    assert spec.shape == (4,)
    model = relu_model(["N", 3])
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.BOOL
    (spec,) = modelio.input_specs(model)
    assert spec.dtype == np.bool_ and modelio.random_inputs([spec], 2)["x"].dtype == np.bool_


def test_a_model_without_a_node_is_said_to_have_nothing_to_run(cli, tmp_path):
    """A valid model whose output is its input was called 'not an ONNX model' (fuzz round 7)."""
    import onnx
    from conftest import assert_one_line_error
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    model = helper.make_model(helper.make_graph([], "g", [value], [value]))
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "zero.onnx")
    assert_one_line_error(cli("profile", tmp_path / "zero.onnx", "-o", tmp_path / "c.csv"),
                          "has no node to run: its outputs are its inputs or constants")
