"""Tiny models for tests: real graphs (branches, attention) that run in about a millisecond."""

from __future__ import annotations

import onnx

from .builder import Conv, GraphBuilder


def build_cnn(seed: int = 0) -> onnx.ModelProto:
    """3x32x32 -> 10 classes; an inception-like block with three parallel branches."""
    g = GraphBuilder("tiny_cnn", seed)
    x = g.input("image", [3, 32, 32])
    x = g.relu(g.conv(x, Conv(3, 16, 3, 2)))  # 16x16x16
    b1 = g.relu(g.conv(x, Conv(16, 8, 1)))
    b2 = g.relu(g.conv(g.relu(g.conv(x, Conv(16, 8, 1))), Conv(8, 12, 3)))
    b3 = g.relu(g.conv(g.maxpool(x, 3, 1, pad=1), Conv(16, 4, 1)))
    x = g.concat([b1, b2, b3])  # 24 channels
    x = g.relu(g.conv(x, Conv(24, 32, 3, 2)))  # 8x8
    x = g.flatten(g.global_avgpool(x))
    logits = g.linear(x, 32, 10, name="classifier")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [10]})


def build_transformer(seed: int = 0) -> onnx.ModelProto:
    """16 tokens x 32 features -> 4 classes; two pre-norm encoder blocks with 4-head attention."""
    dim, heads, tokens, hidden = 32, 4, 16, 64
    g = GraphBuilder("tiny_transformer", seed)
    x = g.input("tokens", [tokens, dim])
    qkv_shape = g.const_i64("qkv_shape", [0, tokens, 3, heads, dim // heads])
    merge_shape = g.const_i64("merge_shape", [0, tokens, dim])
    for i in range(2):
        h = g.layer_norm(x, dim, name=f"block{i}.norm1")
        qkv = g.op("Reshape", [g.linear(h, dim, 3 * dim, name=f"block{i}.qkv"), qkv_shape])
        qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # 3, B, H, T, d
        q, k, v = g.op("Split", [qkv], n_out=3, axis=0)
        q, k, v = (g.op("Squeeze", [t, g.const_i64(g.fresh("axis0"), [0])]) for t in (q, k, v))
        scores = g.mul(g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                       g.scalar((dim // heads) ** -0.5))
        att = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # B, H, T, d
        att = g.op("Reshape", [g.op("Transpose", [att], perm=[0, 2, 1, 3]), merge_shape])
        x = g.add(x, g.linear(att, dim, dim, name=f"block{i}.proj"))
        h = g.layer_norm(x, dim, name=f"block{i}.norm2")
        h = g.linear(g.gelu(g.linear(h, dim, hidden, name=f"block{i}.fc1")), hidden, dim, name=f"block{i}.fc2")
        x = g.add(x, h)
    pooled = g.op("ReduceMean", [g.layer_norm(x, dim, name="norm")], axes=[1], keepdims=0)
    logits = g.linear(pooled, dim, 4, name="head")
    g.op("Identity", [logits], name="logits")
    return g.build({"logits": [4]})
