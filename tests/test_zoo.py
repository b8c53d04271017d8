"""Zoo models: published parameter counts (within 2 %), output shapes, determinism, and they run in ORT."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from staronnx_cli.zoo.builder import IR_VERSION, OPSET, parameter_count
from staronnx_cli.zoo.registry import ZOO

PUBLISHED = [name for name, e in ZOO.items() if e.published_params]
FAST = ["tiny_cnn", "tiny_transformer", "mobilenet_v3_small", "googlenet"]


@pytest.fixture(scope="module")
def built():
    cache: dict = {}

    def get(name):
        if name not in cache:
            cache[name] = ZOO[name].build(0)
        return cache[name]

    return get


@pytest.mark.parametrize("name", PUBLISHED)
def test_parameter_count_matches_the_published_one(built, name):
    count = parameter_count(built(name))
    published = ZOO[name].published_params
    assert abs(count - published) / published < 0.02, (name, count, published)


@pytest.mark.parametrize("name", list(ZOO))
def test_model_is_valid_opset17_ir8_with_a_symbolic_batch(built, name):
    model = built(name)
    onnx.checker.check_model(model)
    assert model.ir_version == IR_VERSION and model.opset_import[0].version == OPSET
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert len({n.name for n in model.graph.node}) == len(model.graph.node), "node names must be unique"


@pytest.mark.parametrize("name", FAST)
def test_output_shape_at_two_batch_sizes(built, name):
    entry = ZOO[name]
    session = ort.InferenceSession(built(name).SerializeToString(), providers=["CPUExecutionProvider"])
    feed_name = session.get_inputs()[0].name
    for batch in (1, 3):
        x = np.random.default_rng(1).standard_normal((batch, *entry.input_shape)).astype(np.float32)
        (out,) = session.run(None, {feed_name: x})
        assert out.shape == (batch, *entry.output_shape)
        assert np.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PUBLISHED if n not in FAST])
def test_large_models_run_one_inference(built, name):
    entry = ZOO[name]
    session = ort.InferenceSession(built(name).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, *entry.input_shape)).astype(np.float32)
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    assert out.shape == (1, *entry.output_shape) and np.isfinite(out).all()


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, c = (ZOO["tiny_cnn"].build(s).SerializeToString() for s in (0, 0, 1))
    assert a == b and a != c


def test_a_model_is_named_in_commands_as_the_user_can_type_it_again(tmp_path):
    """advise suggested 'staronnx split tiny_cnn-seed0-18f3986d2cdf.onnx ...': the cache file's name, no path."""
    from pathlib import Path

    from staronnx_cli.zoo.cache import build_cached
    from staronnx_cli.zoo.names import resolve_model, typed_name

    cached, _ = build_cached("tiny_cnn")
    assert typed_name(cached) == "tiny_cnn" and resolve_model(typed_name(cached)) == cached
    mine = tmp_path / "models" / "net.onnx"
    assert typed_name(mine) == str(mine) and typed_name(Path("net.onnx")) == "net.onnx"
    seed3 = cached.with_name(cached.name.replace("-seed0-", "-seed3-"))  # 'tiny_cnn' would build seed 0: its path
    alike = tmp_path / cached.name  # a user's file named like a cache file: its path
    assert typed_name(seed3) == str(seed3) and typed_name(alike) == str(alike)
