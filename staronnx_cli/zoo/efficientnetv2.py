"""EfficientNetV2-S (Tan & Le, 2021) in torchvision's `efficientnet_v2_s` layout, at 384x384.

Node and initializer names follow torchvision's module paths (e.g. "features.4.2.block.1.0" is the
depthwise conv of block 2 in stage 4, "features.4.2.block.1.1" its BatchNorm), so the parameter
names match torchvision's state_dict and per-node profiles read like the PyTorch module tree.
Nodes without parameters get a descriptive suffix (".silu", ".se.avgpool", ".add", ...).

Inference-only: dropout and stochastic depth are identities and are omitted.
"""

from __future__ import annotations

import onnx

from .builder import Conv, GraphBuilder

BN_EPS = 1e-3  # torchvision builds EfficientNetV2 with BatchNorm2d(eps=1e-3)
STEM_CHANNELS = 24
LAST_CHANNELS = 1280
NUM_CLASSES = 1000
RESOLUTION = 384
# Residual branches end in a BN whose gamma starts small (as zero-init-residual nets do), so the
# activations of the 40 stacked blocks stay finite with He-normal random weights.
RESIDUAL_BN_GAMMA = 0.1

# (block, expand_ratio, kernel, stride, in_channels, out_channels, layers): torchvision's table.
STAGES = [
    ("fused", 1, 3, 1, 24, 24, 2),
    ("fused", 4, 3, 2, 24, 48, 4),
    ("fused", 4, 3, 2, 48, 64, 4),
    ("mb", 4, 3, 2, 64, 128, 6),
    ("mb", 6, 3, 1, 128, 160, 9),
    ("mb", 6, 3, 2, 160, 256, 15),
]


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _bn(g: GraphBuilder, x: str, c: int, name: str, gamma: float = 1.0) -> str:
    ins = [x, g.weight(f"{name}.weight", (c,), value=gamma), g.weight(f"{name}.bias", (c,)),
           g.weight(f"{name}.running_mean", (c,)), g.weight(f"{name}.running_var", (c,), value=1.0)]
    return g.op("BatchNormalization", ins, name=name, epsilon=BN_EPS)


def _silu(g: GraphBuilder, x: str, name: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x], name=f"{name}.sigmoid")], name=name)


def _conv_bn_act(g: GraphBuilder, x: str, shape: Conv, name: str, act: bool = True, gamma: float = 1.0) -> str:
    """torchvision's Conv2dNormActivation: conv (no bias) = name.0, BN = name.1, SiLU = name.2."""
    x = g.conv(x, shape, bias=False, name=f"{name}.0")
    x = _bn(g, x, shape.cout, f"{name}.1", gamma=gamma)
    return _silu(g, x, f"{name}.2") if act else x


def _squeeze_excitation(g: GraphBuilder, x: str, channels: int, squeeze: int, name: str) -> str:
    s = g.op("GlobalAveragePool", [x], name=f"{name}.avgpool")
    s = _silu(g, g.conv(s, Conv(channels, squeeze, 1), name=f"{name}.fc1"), f"{name}.activation")
    s = g.op("Sigmoid", [g.conv(s, Conv(squeeze, channels, 1), name=f"{name}.fc2")], name=f"{name}.scale_activation")
    return g.op("Mul", [x, s], name=f"{name}.scale")


def _fused_mbconv(g: GraphBuilder, x: str, cin: int, cout: int, expand: int, k: int, stride: int,
                  name: str) -> str:
    residual = stride == 1 and cin == cout
    gamma = RESIDUAL_BN_GAMMA if residual else 1.0
    expanded = _make_divisible(cin * expand)
    y = x
    if expanded != cin:
        y = _conv_bn_act(g, y, Conv(cin, expanded, k, stride), f"{name}.block.0")
        y = _conv_bn_act(g, y, Conv(expanded, cout, 1), f"{name}.block.1", act=False, gamma=gamma)
    else:
        y = _conv_bn_act(g, y, Conv(cin, cout, k, stride), f"{name}.block.0", gamma=gamma)
    return g.op("Add", [y, x], name=f"{name}.add") if residual else y


def _mbconv(g: GraphBuilder, x: str, cin: int, cout: int, expand: int, k: int, stride: int,
            name: str) -> str:
    residual = stride == 1 and cin == cout
    expanded = _make_divisible(cin * expand)
    y, i = x, 0
    if expanded != cin:
        y = _conv_bn_act(g, y, Conv(cin, expanded, 1), f"{name}.block.{i}")
        i += 1
    y = _conv_bn_act(g, y, Conv(expanded, expanded, k, stride, expanded), f"{name}.block.{i}")
    y = _squeeze_excitation(g, y, expanded, max(1, cin // 4), f"{name}.block.{i + 1}")
    y = _conv_bn_act(g, y, Conv(expanded, cout, 1), f"{name}.block.{i + 2}", act=False,
                     gamma=RESIDUAL_BN_GAMMA if residual else 1.0)
    return g.op("Add", [y, x], name=f"{name}.add") if residual else y


def build(seed: int = 0) -> onnx.ModelProto:
    """3x384x384 image -> 1000 logits; 21,458,488 parameters as torchvision counts them."""
    g = GraphBuilder("efficientnet_v2_s", seed)
    x = g.input("image", [3, RESOLUTION, RESOLUTION])
    x = _conv_bn_act(g, x, Conv(3, STEM_CHANNELS, 3, 2), "features.0")
    channels = STEM_CHANNELS
    for s, (kind, expand, k, stride, cin, cout, layers) in enumerate(STAGES, start=1):
        block = _fused_mbconv if kind == "fused" else _mbconv
        for j in range(layers):
            x = block(g, x, cin if j == 0 else cout, cout, expand, k, stride if j == 0 else 1,
                      f"features.{s}.{j}")
        channels = cout
    x = _conv_bn_act(g, x, Conv(channels, LAST_CHANNELS, 1), f"features.{len(STAGES) + 1}")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], name="flatten", axis=1)
    logits = g.linear(x, LAST_CHANNELS, NUM_CLASSES, name="classifier.1")  # classifier.0 is Dropout
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [NUM_CLASSES]})
