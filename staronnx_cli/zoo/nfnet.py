"""NFNet-F0, the normalizer-free ResNet; the layout of timm's dm_nfnet_f0 (DeepMind-compatible variant).

- 'deep_quad' stem: 3x3 convs 3->16 (stride 2), 16->32, 32->64, 64->128 (stride 2), GELU between.
- 4 stages of depths (1, 2, 6, 3) and widths (256, 512, 1536, 1536); stage strides 1, 2, 2, 2.
- NormFreeBlock (pre-activation bottleneck, mid = out / 2, group width 128):
  act1 * beta -> [avg-pool 2x2 + conv 1x1 shortcut on the first block of a stage]
  conv1 1x1 -> act -> conv2 3x3 grouped (stride) -> act -> conv2b 3x3 grouped -> act -> conv3 1x1
  -> SE (reduction 0.5 of the block's output width, ReLU, sigmoid) * attn_gain 2
  -> * skipinit_gain -> * alpha (0.2) + shortcut.
  beta = 1 / sqrt(expected variance), reset at each stage's first block, which adds alpha^2 per block.
- final conv 1x1 1536 -> 3072, GELU, global average pool, Linear 3072 -> 1000.

Every activation is GELU times the DeepMind gamma 1.7015 (timm's gamma_in_act). Convolutions are
timm's ScaledStdConv2dSame: TensorFlow 'SAME' padding (asymmetric for the stride-2 3x3 convs) and
weights standardised per output channel, scaled by 1/sqrt(fan_in), times a learned per-channel gain.
The standardisation depends on the weights only, so it is folded into the stored `.weight`; the gain
stays a separate `.gain` initializer multiplied into the weight (a constant-only Mul that ONNX
Runtime folds at session creation), so it is counted as a parameter as PyTorch counts it.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from .builder import Conv, GraphBuilder

IMAGE_SIZE = 256  # timm's test size for F0 (train size 192)
STEM_CHS = (16, 32, 64, 128)
STEM_STRIDES = (2, 1, 1, 2)
DEPTHS = (1, 2, 6, 3)
CHANNELS = (256, 512, 1536, 1536)
GROUP_WIDTH = 128
BOTTLE_RATIO = 0.5
SE_RATIO = 0.5
ALPHA = 0.2
ATTN_GAIN = 2.0
GELU_GAMMA = 1.7015043497085571  # DeepMind's second-moment correction for GELU
STD_CONV_EPS = 1e-5
NUM_FEATURES = 2 * CHANNELS[-1]
NUM_CLASSES = 1000
# timm initialises skipinit_gain to 0 (each block starts as the identity). A zero would make every
# residual branch numerically dead; 1.0 keeps the branches live and, with the NF variance bookkeeping,
# activations stay O(1) through all 12 blocks.
SKIPINIT_GAIN = 1.0


class _Ops:
    """Shared constants and the small helpers GraphBuilder lacks, with nodes named under a prefix."""

    def __init__(self, g: GraphBuilder):
        self.g = g
        self.half = g.scalar(0.5)
        self.inv_sqrt2 = g.scalar(float(1.0 / np.sqrt(2.0)))
        self.one = g.scalar(1.0)
        self.gamma = g.scalar(GELU_GAMMA)
        self.alpha = g.scalar(ALPHA)
        self.attn_gain = g.scalar(ATTN_GAIN)
        self._scalars: dict[float, str] = {}

    def scalar(self, value: float) -> str:
        if value not in self._scalars:
            self._scalars[value] = self.g.scalar(value)
        return self._scalars[value]

    def act(self, x: str, name: str) -> str:
        """timm GammaAct: exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), times gamma."""
        g = self.g
        e = g.op("Erf", [g.op("Mul", [x, self.inv_sqrt2], name=f"{name}.scale")], name=f"{name}.erf")
        e1 = g.op("Add", [e, self.one], name=f"{name}.erf_plus1")
        y = g.op("Mul", [g.op("Mul", [x, self.half], name=f"{name}.half"), e1], name=f"{name}.gelu")
        return g.op("Mul", [y, self.gamma], name=name)

    def std_conv(self, x: str, cin: int, cout: int, k: int, size: int, stride: int = 1, group: int = 1,
                 name: str = "") -> tuple[str, int]:
        """ScaledStdConv2dSame on a size x size input; returns (output, output size)."""
        g = self.g
        fan_in = cin // group * k * k
        w = g.rng.standard_normal((cout, fan_in), dtype=np.float64)
        w = (w - w.mean(axis=1, keepdims=True)) / np.sqrt(w.var(axis=1, keepdims=True) + STD_CONV_EPS)
        w = (w * fan_in ** -0.5).astype(np.float32).reshape(cout, cin // group, k, k)
        g.initializers.append(numpy_helper.from_array(w, f"{name}.weight"))
        gain = g.weight(f"{name}.gain", (cout, 1, 1, 1), value=1.0)
        bias = g.weight(f"{name}.bias", (cout,))
        weight = g.op("Mul", [f"{name}.weight", gain], name=f"{name}.weight_gain")
        # TensorFlow 'SAME': total padding so that out = ceil(size / stride), the odd pixel at the end.
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + k - size, 0)
        begin, end = total // 2, total - total // 2
        y = g.op("Conv", [x, weight, bias], name=name, kernel_shape=[k, k], strides=[stride, stride],
                 pads=[begin, begin, end, end], group=group, dilations=[1, 1])
        return y, out

    def squeeze_excite(self, x: str, c: int, name: str) -> str:
        """timm SEModule: mean over H, W -> 1x1 conv (c -> c/2) -> ReLU -> 1x1 conv -> sigmoid gate."""
        g = self.g
        rd = int(c * SE_RATIO)
        s = g.op("GlobalAveragePool", [x], name=f"{name}.pool")
        s = g.conv(s, Conv(c, rd, 1), pad=0, name=f"{name}.fc1")
        s = g.op("Relu", [s], name=f"{name}.act")
        s = g.conv(s, Conv(rd, c, 1), pad=0, name=f"{name}.fc2")
        s = g.op("Sigmoid", [s], name=f"{name}.gate")
        return g.op("Mul", [x, s], name=name)


def _block(ops: _Ops, x: str, cin: int, cout: int, stride: int, beta: float, size: int, p: str):
    """One NormFreeBlock; returns (output, output size)."""
    g = ops.g
    mid = int(cout * BOTTLE_RATIO)
    groups = mid // GROUP_WIDTH
    out = g.op("Mul", [ops.act(x, f"{p}.act1"), ops.scalar(beta)], name=f"{p}.beta")

    shortcut = x
    if cin != cout or stride != 1:
        s = out
        if stride > 1:
            s = g.op("AveragePool", [s], name=f"{p}.downsample.pool", kernel_shape=[2, 2],
                     strides=[stride, stride], pads=[0, 0, 0, 0], ceil_mode=1, count_include_pad=0)
        shortcut, _ = ops.std_conv(s, cin, cout, 1, math.ceil(size / stride), name=f"{p}.downsample.conv")

    out, _ = ops.std_conv(out, cin, mid, 1, size, name=f"{p}.conv1")
    out, size = ops.std_conv(ops.act(out, f"{p}.act2"), mid, mid, 3, size, stride, groups, name=f"{p}.conv2")
    out, _ = ops.std_conv(ops.act(out, f"{p}.act2b"), mid, mid, 3, size, 1, groups, name=f"{p}.conv2b")
    out, _ = ops.std_conv(ops.act(out, f"{p}.act3"), mid, cout, 1, size, name=f"{p}.conv3")
    out = ops.squeeze_excite(out, cout, f"{p}.attn_last")
    out = g.op("Mul", [out, ops.attn_gain], name=f"{p}.attn_gain")
    out = g.op("Mul", [out, g.weight(f"{p}.skipinit_gain", (), value=SKIPINIT_GAIN)], name=f"{p}.skipinit")
    out = g.op("Mul", [out, ops.alpha], name=f"{p}.alpha")
    return g.op("Add", [out, shortcut], name=f"{p}.residual"), size


def build(seed: int = 0) -> onnx.ModelProto:
    """image [batch, 3, 256, 256] -> logits [batch, 1000]."""
    g = GraphBuilder("nfnet_f0", seed)
    ops = _Ops(g)
    x = g.input("image", [3, IMAGE_SIZE, IMAGE_SIZE])
    size = IMAGE_SIZE

    cin = 3
    for i, (c, s) in enumerate(zip(STEM_CHS, STEM_STRIDES, strict=True)):
        x, size = ops.std_conv(x, cin, c, 3, size, s, name=f"stem.conv{i + 1}")
        if i < len(STEM_CHS) - 1:
            x = ops.act(x, f"stem.act{i + 2}")
        cin = c

    expected_var = 1.0
    for si, (depth, cout) in enumerate(zip(DEPTHS, CHANNELS, strict=True)):
        stride = 1 if si == 0 else 2  # the quad stem already reduces by 4
        for bi in range(depth):
            x, size = _block(ops, x, cin, cout, stride if bi == 0 else 1, 1.0 / expected_var ** 0.5, size,
                             f"stages.{si}.{bi}")
            if bi == 0:
                expected_var = 1.0
            expected_var += ALPHA ** 2
            cin = cout

    x, size = ops.std_conv(x, cin, NUM_FEATURES, 1, size, name="final_conv")
    x = ops.act(x, "final_act")
    x = g.op("GlobalAveragePool", [x], name="head.global_pool")
    x = g.op("Flatten", [x], name="head.flatten", axis=1)
    logits = g.linear(x, NUM_FEATURES, NUM_CLASSES, name="head.fc")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [NUM_CLASSES]})
