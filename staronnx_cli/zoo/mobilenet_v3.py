"""MobileNetV3-Small in torchvision's layout (`torchvision.models.mobilenet_v3_small()`).

Inverted residual blocks from torchvision's config table, squeeze-and-excitation with
make_divisible(expanded // 4, 8) squeeze channels (fc1 -> ReLU -> fc2 -> Hardsigmoid), BatchNorm
eps=0.001, last conv 96->576, classifier Linear(576, 1024) -> Hardswish -> Linear(1024, 1000).
Dropout is an inference no-op and is omitted. Node names follow torchvision's module names
(e.g. "features.4.block.2.fc1").
"""

from __future__ import annotations

import onnx

from .builder import Conv, GraphBuilder

BN_EPS = 0.001
# (input_c, kernel, expanded_c, out_c, use_se, activation, stride), torchvision's "mobilenet_v3_small".
BLOCKS = [
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
]
LAST_CONV = 576
LAST_CHANNEL = 1024


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's _make_divisible: round to a multiple of divisor, never dropping more than 10 %."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _activation(g: GraphBuilder, x: str, kind: str | None, name: str) -> str:
    if kind == "RE":
        return g.op("Relu", [x], name=name)
    if kind == "HS":
        return g.op("HardSwish", [x], name=name)
    return x


def _conv_bn_act(g: GraphBuilder, x: str, shape: Conv, name: str, act: str | None = None) -> str:
    """torchvision's Conv2dNormActivation: Conv2d(bias=False) (.0) -> BatchNorm2d (.1) -> activation (.2)."""
    x = g.conv(x, shape, bias=False, name=f"{name}.0")
    x = g.bn(x, shape.cout, eps=BN_EPS, name=f"{name}.1")
    return _activation(g, x, act, f"{name}.2")


def _squeeze_excitation(g: GraphBuilder, x: str, channels: int, name: str) -> str:
    squeeze = _make_divisible(channels // 4, 8)
    s = g.op("GlobalAveragePool", [x], name=f"{name}.avgpool")
    s = g.conv(s, Conv(channels, squeeze, 1), name=f"{name}.fc1")
    s = g.op("Relu", [s], name=f"{name}.activation")
    s = g.conv(s, Conv(squeeze, channels, 1), name=f"{name}.fc2")
    # PyTorch's hardsigmoid: relu6(x + 3) / 6
    s = g.op("HardSigmoid", [s], name=f"{name}.scale_activation", alpha=1.0 / 6.0, beta=0.5)
    return g.op("Mul", [s, x], name=f"{name}.mul")


def _inverted_residual(g: GraphBuilder, x: str, name: str, config: tuple) -> str:
    """torchvision's InvertedResidual; `config`: its row of the table (in, kernel, expanded, out, SE, activation,
    stride)."""
    cin, k, expanded, cout, use_se, act, stride = config
    inp = x
    i = 0
    if expanded != cin:
        x = _conv_bn_act(g, x, Conv(cin, expanded, 1), f"{name}.block.{i}", act=act)
        i += 1
    x = _conv_bn_act(g, x, Conv(expanded, expanded, k, stride, expanded), f"{name}.block.{i}", act=act)
    i += 1
    if use_se:
        x = _squeeze_excitation(g, x, expanded, f"{name}.block.{i}")
        i += 1
    x = _conv_bn_act(g, x, Conv(expanded, cout, 1), f"{name}.block.{i}")
    if stride == 1 and cin == cout:
        x = g.op("Add", [x, inp], name=f"{name}.add")
    return x


def build(seed: int = 0) -> onnx.ModelProto:
    """3x224x224 image -> 1000 logits; 2,542,856 parameters (torchvision's count)."""
    g = GraphBuilder("mobilenet_v3_small", seed)
    x = g.input("image", [3, 224, 224])
    x = _conv_bn_act(g, x, Conv(3, BLOCKS[0][0], 3, 2), "features.0", act="HS")  # 16x112x112
    for i, cfg in enumerate(BLOCKS, start=1):
        x = _inverted_residual(g, x, f"features.{i}", tuple(cfg))
    x = _conv_bn_act(g, x, Conv(BLOCKS[-1][3], LAST_CONV, 1), f"features.{len(BLOCKS) + 1}", act="HS")
    x = g.op("GlobalAveragePool", [x], name="avgpool")
    x = g.op("Flatten", [x], name="flatten", axis=1)
    x = g.linear(x, LAST_CONV, LAST_CHANNEL, name="classifier.0")
    x = g.op("HardSwish", [x], name="classifier.1")
    logits = g.linear(x, LAST_CHANNEL, 1000, name="classifier.3")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [1000]})
