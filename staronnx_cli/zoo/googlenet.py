"""GoogLeNet (Inception v1) in torchvision's layout, without the auxiliary heads.

Mirrors `torchvision.models.googlenet(aux_logits=False, transform_input=False)`: every convolution is a
BasicConv2d (Conv without bias + BatchNorm(eps=0.001) + ReLU), and, as in torchvision, the third
inception branch uses a 3x3 convolution where the paper has a 5x5 one. Dropout is an inference no-op
and is omitted. Node names follow torchvision's module names (e.g. "inception3a.branch2.1.conv").
"""

from __future__ import annotations

import onnx

from .builder import Conv, GraphBuilder

# name: (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj), as torchvision's Inception.
INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
BN_EPS = 0.001


def _basic_conv(g: GraphBuilder, x: str, cin: int, cout: int, k: int, name: str, stride: int = 1, pad: int = 0):
    """torchvision's BasicConv2d: Conv2d(bias=False) -> BatchNorm2d(eps=0.001) -> ReLU."""
    x = g.conv(x, Conv(cin, cout, k, stride), pad=pad, bias=False, name=f"{name}.conv")
    x = g.bn(x, cout, eps=BN_EPS, name=f"{name}.bn")
    return g.op("Relu", [x], name=f"{name}.relu")


def _maxpool(g: GraphBuilder, x: str, k: int, stride: int, name: str, pad: int = 0) -> str:
    """MaxPool2d(k, stride, padding=pad, ceil_mode=True), as every pool in torchvision's GoogLeNet."""
    return g.op("MaxPool", [x], name=name, kernel_shape=[k, k], strides=[stride, stride],
                pads=[pad] * 4, ceil_mode=1)


def _inception(g: GraphBuilder, x: str, name: str, channels: tuple[int, ...]):
    """torchvision's Inception block; `channels`: its row of the table (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5,
    pool projection)."""
    cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = channels
    b1 = _basic_conv(g, x, cin, ch1x1, 1, f"{name}.branch1")
    b2 = _basic_conv(g, x, cin, ch3x3red, 1, f"{name}.branch2.0")
    b2 = _basic_conv(g, b2, ch3x3red, ch3x3, 3, f"{name}.branch2.1", pad=1)
    b3 = _basic_conv(g, x, cin, ch5x5red, 1, f"{name}.branch3.0")
    # torchvision uses kernel_size=3 here (a known deviation from the paper's 5x5, kept for weights).
    b3 = _basic_conv(g, b3, ch5x5red, ch5x5, 3, f"{name}.branch3.1", pad=1)
    b4 = _maxpool(g, x, 3, 1, f"{name}.branch4.0.maxpool", pad=1)
    b4 = _basic_conv(g, b4, cin, pool_proj, 1, f"{name}.branch4.1")
    return g.op("Concat", [b1, b2, b3, b4], name=f"{name}.concat", axis=1)


def build(seed: int = 0) -> onnx.ModelProto:
    """3x224x224 image -> 1000 logits; 6,624,904 parameters (torchvision's count)."""
    g = GraphBuilder("googlenet", seed)
    x = g.input("image", [3, 224, 224])
    x = _basic_conv(g, x, 3, 64, 7, "conv1", stride=2, pad=3)  # 64x112x112
    x = _maxpool(g, x, 3, 2, "maxpool1")  # 56x56
    x = _basic_conv(g, x, 64, 64, 1, "conv2")
    x = _basic_conv(g, x, 64, 192, 3, "conv3", pad=1)
    x = _maxpool(g, x, 3, 2, "maxpool2")  # 28x28
    for name, cfg in INCEPTIONS.items():
        if name == "inception4a":
            x = _maxpool(g, x, 3, 2, "maxpool3")  # 14x14
        elif name == "inception5a":
            x = _maxpool(g, x, 2, 2, "maxpool4")  # 7x7
        x = _inception(g, x, name, tuple(cfg))
    x = g.op("GlobalAveragePool", [x], name="avgpool")
    x = g.op("Flatten", [x], name="flatten", axis=1)
    logits = g.linear(x, 1024, 1000, name="fc")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [1000]})
