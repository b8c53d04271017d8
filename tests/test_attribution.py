"""Kernels of ORT's optimised graph are attributed back to every node of the original graph."""

import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from staronnx_cli.ortenv import session_options
from staronnx_cli.profile.attribution import attribute
from staronnx_cli.zoo.registry import ZOO


def _graph(nodes, name="g"):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])])
    return helper.make_model(g)


def test_fused_pair_shares_its_kernel_and_untouched_nodes_are_exact():
    original = _graph([helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
                       helper.make_node("Add", ["m", "b"], ["a"], name="add"),
                       helper.make_node("Relu", ["a"], ["y"], name="relu")])
    optimised = _graph([helper.make_node("Gemm", ["x", "w", "b"], ["a"], name="mm/MatMulAddFusion"),
                        helper.make_node("Relu", ["a"], ["y"], name="relu")])
    result = {a.node: a for a in attribute(original, optimised)}
    assert result["relu"].how == "exact" and result["relu"].kernels == ("relu",) and result["relu"].share == 1.0
    assert result["mm"].kernels == result["add"].kernels == ("mm/MatMulAddFusion",)
    assert result["mm"].how == result["add"].how == "fused"
    assert result["mm"].share + result["add"].share == pytest.approx(1.0)


def test_eliminated_identity_joins_its_neighbour_and_folded_nodes_get_no_kernel():
    original = _graph([helper.make_node("Shape", ["c"], ["s"], name="shape_of_const"),  # folded by ORT
                       helper.make_node("Identity", ["x"], ["i"], name="ident"),
                       helper.make_node("Reshape", ["i", "s"], ["y"], name="reshape")])
    optimised = _graph([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")])
    result = {a.node: a for a in attribute(original, optimised)}
    assert result["shape_of_const"].how == "folded" and result["shape_of_const"].kernels == ()
    assert result["ident"].kernels == result["reshape"].kernels == ("reshape",)


@pytest.mark.parametrize("level", ["basic", "extended", "all"])
def test_every_node_of_a_real_model_is_attributed_once(tmp_path, level):
    model = ZOO["tiny_cnn"].build(0)
    so = session_options(1, level)
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "opt.onnx"))
    result = attribute(model, optimised)
    assert [a.node for a in result] == [n.name for n in model.graph.node]
    kernels = {n.name for n in optimised.graph.node}
    shares: dict = {}
    for a in result:
        assert set(a.kernels) <= kernels
        shares[a.kernels] = shares.get(a.kernels, 0.0) + a.share
    # each kernel group's time is handed out exactly once
    assert all(total == pytest.approx(1.0) for group, total in shares.items() if group)
    # every kernel ORT ran is accounted for
    assert set().union(*(set(a.kernels) for a in result)) == kernels
    if level == "basic":
        assert sum(a.how == "exact" for a in result) >= len(result) // 2


def test_a_large_group_shared_by_the_work_estimate_is_said_and_conv_bn_pairs_are_not():
    """An fp16 MLP on CPU ran as one group of 13 kernels (Casts around it) shared among its 9 nodes by the work
    estimate: the profile showed each node's share as measured (an own-model walk). Conv+BN pairs (GoogLeNet's 117
    fused rows, one kernel each) are measured, and stay unsaid."""
    from staronnx_cli.profile.attribution import estimated_group_warning

    def row(node, us, kernels, how="fused"):
        return {"node": node, "mean_us": us, "kernels": kernels, "how": how}

    region = "cast_x cast_w mm0 mm1 relu"
    fp16 = [row("mm0", 30.0, region), row("relu", 1.0, region), row("mm1", 60.0, region), row("out", 9.0, "o", "exact")]
    said = estimated_group_warning(1, fp16)
    assert said.startswith("batch 1: 91% of the node time is one group of 5 kernels shared among 3 nodes (mm0 ... "
                           "mm1) by a work estimate"), said
    pairs = [row(f"conv{i}", 99.0, f"conv{i}") for i in range(5)] + [row(f"bn{i}", 1.0, f"conv{i}") for i in range(5)]
    assert estimated_group_warning(1, pairs) == ""
    assert estimated_group_warning(1, fp16[:2] + [row("big", 300.0, "big", "exact")]) == ""  # 2 nodes, 8 %
    small = [row(f"n{i}", 1.0, region) for i in range(3)] + [row("big", 10.0, "big", "exact")]
    assert estimated_group_warning(1, small) == ""  # 23 % of the time: below the share said
