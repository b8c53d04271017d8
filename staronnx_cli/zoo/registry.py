"""The zoo's table of models: name -> builder, published parameter count and shapes.

Builders are imported lazily so `zoo list` does not build anything.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import onnx


@dataclass(frozen=True)
class ZooEntry:
    name: str
    module: str  # "staronnx_cli.zoo.<module>:<function>", the function maps seed -> onnx.ModelProto
    summary: str
    published_params: int  # the reference implementation's count (torchvision / timm)
    input_shape: tuple[int, ...]  # without the batch dimension
    output_shape: tuple[int, ...]
    role: str  # "paper", "demo" or "test"

    def build(self, seed: int = 0) -> onnx.ModelProto:
        module, _, function = self.module.partition(":")
        return getattr(importlib.import_module(f"staronnx_cli.zoo.{module}"), function or "build")(seed)


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("googlenet", "googlenet", "Inception v1, no aux heads (torchvision)",
             6_624_904, (3, 224, 224), (1000,), "paper"),
    ZooEntry("efficientnetv2_s", "efficientnetv2", "EfficientNetV2-S (torchvision)",
             21_458_488, (3, 384, 384), (1000,), "paper"),
    ZooEntry("nfnet_f0", "nfnet", "NFNet-F0 (timm dm_nfnet_f0)",
             71_489_320, (3, 256, 256), (1000,), "paper"),
    ZooEntry("vit_b16_7", "vit", "ViT-B/16, 7 classes (paper's ViT-face-expression)",
             85_804_039, (3, 224, 224), (7,), "paper"),
    ZooEntry("mobilenet_v3_small", "mobilenet_v3", "MobileNetV3-Small (torchvision)",
             2_542_856, (3, 224, 224), (1000,), "demo"),
    ZooEntry("tiny_cnn", "tiny:build_cnn", "CNN with parallel branches, well under 1 ms (tests)",
             0, (3, 32, 32), (10,), "test"),
    ZooEntry("tiny_transformer", "tiny:build_transformer", "2-block transformer, 16 tokens (tests)",
             0, (16, 32), (4,), "test"),
]}

DEFAULT_MODEL = "googlenet"
