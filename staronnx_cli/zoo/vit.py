"""ViT-B/16 at 224x224 with a 7-class head; the layout of timm's vit_base_patch16_224(num_classes=7).

Patch embedding (16x16/16 conv, 3 -> 768), class token, learned position embedding (197 x 768),
12 pre-norm encoder blocks (12-head attention, MLP 768 -> 3072 -> 768 with exact GELU), final
LayerNorm, and the head on the class token. LayerNorm eps is timm's 1e-6.

The batch dimension is symbolic, so the class token is expanded to the batch size at run time from
Shape(image). Parameter names follow timm's state_dict (patch_embed.proj, cls_token, pos_embed,
blocks.N.attn.qkv, ...), and every node is named after the module it belongs to.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .builder import Conv, GraphBuilder

IMAGE_SIZE = 224
PATCH = 16
DIM = 768
DEPTH = 12
HEADS = 12
MLP_HIDDEN = 3072
NUM_CLASSES = 7
LN_EPS = 1e-6
GRID = IMAGE_SIZE // PATCH
TOKENS = GRID * GRID + 1  # 196 patches + the class token


def _normal(g: GraphBuilder, name: str, shape: tuple[int, ...], std: float) -> str:
    """A float32 initializer drawn N(0, std^2) from the builder's generator (timm's trunc_normal-like)."""
    data = g.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    g.initializers.append(numpy_helper.from_array(data, name))
    return name


def _index(g: GraphBuilder, name: str, value: int) -> str:
    """A rank-0 int64 initializer: Gather with a scalar index drops the gathered axis."""
    g.initializers.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
    return name


def _gelu(g: GraphBuilder, x: str, consts: tuple[str, str, str], name: str) -> str:
    """Exact (erf) GELU, 0.5 * x * (1 + erf(x / sqrt(2))), with nodes named under `name`."""
    half, inv_sqrt2, one = consts
    e = g.op("Erf", [g.op("Mul", [x, inv_sqrt2], name=f"{name}.scale")], name=f"{name}.erf")
    e1 = g.op("Add", [e, one], name=f"{name}.erf_plus1")
    return g.op("Mul", [g.op("Mul", [x, half], name=f"{name}.half"), e1], name=name)


def _attention(g: GraphBuilder, x: str, p: str, shapes: dict[str, str]) -> str:
    """timm Attention: qkv Linear, split into heads, softmax(q k^T / sqrt(d)) v, proj Linear."""
    qkv = g.linear(x, DIM, 3 * DIM, name=f"{p}.qkv")
    qkv = g.op("Reshape", [qkv, shapes["qkv"]], name=f"{p}.qkv_reshape")  # B, T, 3, H, d
    qkv = g.op("Transpose", [qkv], name=f"{p}.qkv_permute", perm=[2, 0, 3, 1, 4])  # 3, B, H, T, d
    q, k, v = (g.op("Gather", [qkv, shapes[f"idx{i}"]], name=f"{p}.{t}", axis=0)
               for i, t in enumerate("qkv"))
    q = g.op("Mul", [q, shapes["scale"]], name=f"{p}.q_scale")
    kt = g.op("Transpose", [k], name=f"{p}.k_transpose", perm=[0, 1, 3, 2])
    scores = g.op("MatMul", [q, kt], name=f"{p}.qk")  # B, H, T, T
    att = g.op("Softmax", [scores], name=f"{p}.softmax", axis=-1)
    out = g.op("MatMul", [att, v], name=f"{p}.av")  # B, H, T, d
    out = g.op("Transpose", [out], name=f"{p}.heads_permute", perm=[0, 2, 1, 3])  # B, T, H, d
    out = g.op("Reshape", [out, shapes["merge"]], name=f"{p}.heads_merge")  # B, T, C
    return g.linear(out, DIM, DIM, name=f"{p}.proj")


def build(seed: int = 0) -> onnx.ModelProto:
    """image [batch, 3, 224, 224] -> logits [batch, 7]."""
    g = GraphBuilder("vit_b16_7", seed)
    image = g.input("image", [3, IMAGE_SIZE, IMAGE_SIZE])

    gelu_consts = (g.scalar(0.5), g.scalar(float(1.0 / np.sqrt(2.0))), g.scalar(1.0))
    shapes = {
        "patches": g.const_i64("patch_embed.shape", [0, DIM, GRID * GRID]),
        "cls": g.const_i64("cls_token.tail_shape", [1, DIM]),
        "qkv": g.const_i64("attn.qkv_shape", [0, TOKENS, 3, HEADS, DIM // HEADS]),
        "merge": g.const_i64("attn.merge_shape", [0, TOKENS, DIM]),
        "idx0": _index(g, "attn.q_index", 0),
        "idx1": _index(g, "attn.k_index", 1),
        "idx2": _index(g, "attn.v_index", 2),
        "scale": g.scalar((DIM // HEADS) ** -0.5),
        "cls_index": _index(g, "head.cls_index", 0),
    }

    # Patch embedding: conv 16x16/16, then [B, 768, 14, 14] -> [B, 196, 768].
    x = g.conv(image, Conv(3, DIM, PATCH, PATCH), pad=0, name="patch_embed.proj")
    x = g.op("Reshape", [x, shapes["patches"]], name="patch_embed.flatten")
    x = g.op("Transpose", [x], name="patch_embed.transpose", perm=[0, 2, 1])

    # Class token expanded to the run-time batch size, then the position embedding.
    cls = _normal(g, "cls_token", (1, 1, DIM), 1e-6)
    batch = g.op("Shape", [image], name="cls_token.batch_size", start=0, end=1)
    cls_shape = g.op("Concat", [batch, shapes["cls"]], name="cls_token.shape", axis=0)
    cls = g.op("Expand", [cls, cls_shape], name="cls_token.expand")
    x = g.op("Concat", [cls, x], name="cls_token.concat", axis=1)  # B, 197, 768
    x = g.op("Add", [x, _normal(g, "pos_embed", (1, TOKENS, DIM), 0.02)], name="pos_embed.add")

    for i in range(DEPTH):
        p = f"blocks.{i}"
        h = g.layer_norm(x, DIM, eps=LN_EPS, name=f"{p}.norm1")
        x = g.op("Add", [x, _attention(g, h, f"{p}.attn", shapes)], name=f"{p}.attn_residual")
        h = g.layer_norm(x, DIM, eps=LN_EPS, name=f"{p}.norm2")
        h = g.linear(h, DIM, MLP_HIDDEN, name=f"{p}.mlp.fc1")
        h = _gelu(g, h, gelu_consts, name=f"{p}.mlp.act")
        h = g.linear(h, MLP_HIDDEN, DIM, name=f"{p}.mlp.fc2")
        x = g.op("Add", [x, h], name=f"{p}.mlp_residual")

    x = g.layer_norm(x, DIM, eps=LN_EPS, name="norm")
    x = g.op("Gather", [x, shapes["cls_index"]], name="head.cls_pool", axis=1)  # B, 768
    logits = g.linear(x, DIM, NUM_CLASSES, name="head")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [NUM_CLASSES]})
