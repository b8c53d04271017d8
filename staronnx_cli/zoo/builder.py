"""A small graph builder over onnx.helper, so each zoo model reads like its paper's layer table.

Weights are seeded random (He-scaled normal): inference time does not depend on weight values, and
scaled weights keep activations finite (NaN/denormal values would distort CPU timings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# onnx.helper writes the newest IR version by default; ONNX Runtime refuses IR versions it does not
# know. IR 8 is the one that goes with opset 17.
IR_VERSION = 8
BATCH_DIM = "batch"
# Initializer name suffixes that are buffers, not parameters (PyTorch counts neither).
BUFFER_SUFFIXES = (".running_mean", ".running_var")


@dataclass(frozen=True)
class Conv:
    """A convolution's shape: channels in and out, kernel (k or (kh, kw)), stride, groups."""

    cin: int
    cout: int
    k: int | tuple[int, int]
    stride: int = 1
    group: int = 1


class GraphBuilder:
    """Accumulates nodes and initializers; every helper returns the name of its output tensor."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._counts: dict[str, int] = {}

    # -- naming -----------------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}_{n}"

    # -- graph inputs and tensors ------------------------------------------------------------------
    def input(self, name: str, shape: list[int | str], elem_type: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, [BATCH_DIM, *shape]))
        return name

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int | None = None, value=None) -> str:
        """A float32 initializer: He-normal for fan_in, else the constant `value` (default 0)."""
        if fan_in is not None:
            data = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        else:
            data = np.full(shape, 0.0 if value is None else value, dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(data, name))
        return name

    def const_i64(self, name: str, values: list[int]) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    # -- generic node ----------------------------------------------------------------------------
    def op(self, op_type: str, inputs: list[str], name: str | None = None, n_out: int = 1, **attrs):
        name = name or self.fresh(op_type)
        outputs = [name] if n_out == 1 else [f"{name}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0] if n_out == 1 else outputs

    # -- layers ------------------------------------------------------------------------------------
    def conv(self, x, shape: Conv, pad=None, bias=True, name=None):
        cin, cout, k, stride, group = shape.cin, shape.cout, shape.k, shape.stride, shape.group
        kh, kw = (k, k) if isinstance(k, int) else k
        dilation = 1  # no zoo model dilates
        if pad is None:
            pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        ph, pw = (pad, pad) if isinstance(pad, int) else pad
        name = name or self.fresh("conv")
        w = self.weight(f"{name}.weight", (cout, cin // group, kh, kw), fan_in=cin // group * kh * kw)
        ins = [x, w]
        if bias:
            ins.append(self.weight(f"{name}.bias", (cout,)))
        return self.op("Conv", ins, name=name, kernel_shape=[kh, kw], strides=[stride, stride],
                       pads=[ph, pw, ph, pw], group=group, dilations=[dilation, dilation])

    def bn(self, x, c, eps=1e-5, name=None):
        name = name or self.fresh("bn")
        ins = [x, self.weight(f"{name}.weight", (c,), value=1.0), self.weight(f"{name}.bias", (c,)),
               self.weight(f"{name}.running_mean", (c,)), self.weight(f"{name}.running_var", (c,), value=1.0)]
        return self.op("BatchNormalization", ins, name=name, epsilon=eps)

    def layer_norm(self, x, c, eps=1e-6, name=None):
        name = name or self.fresh("ln")
        ins = [x, self.weight(f"{name}.weight", (c,), value=1.0), self.weight(f"{name}.bias", (c,))]
        return self.op("LayerNormalization", ins, name=name, axis=-1, epsilon=eps)

    def linear(self, x, cin, cout, bias=True, name=None):
        """x @ W (+ b) with W stored (cin, cout): MatMul + Add, which works on any rank."""
        name = name or self.fresh("linear")
        y = self.op("MatMul", [x, self.weight(f"{name}.weight", (cin, cout), fan_in=cin)], name=name)
        if bias:
            y = self.op("Add", [y, self.weight(f"{name}.bias", (cout,))], name=f"{name}_bias")
        return y

    def relu(self, x):
        return self.op("Relu", [x])

    def silu(self, x):
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def hardswish(self, x):
        return self.op("HardSwish", [x])

    def hardsigmoid(self, x):
        # PyTorch's hardsigmoid: relu6(x + 3) / 6
        return self.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)

    def gelu(self, x):
        """Exact (erf) GELU from opset-17 primitives: 0.5 * x * (1 + erf(x / sqrt(2)))."""
        half = self.scalar(0.5)
        inv_sqrt2 = self.scalar(1.0 / np.sqrt(2.0))
        one = self.scalar(1.0)
        e = self.op("Erf", [self.op("Mul", [x, inv_sqrt2])])
        return self.op("Mul", [self.op("Mul", [x, half]), self.op("Add", [e, one])])

    def scalar(self, value: float) -> str:
        name = f"const_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
        return name

    def add(self, a, b):
        return self.op("Add", [a, b])

    def mul(self, a, b):
        return self.op("Mul", [a, b])

    def concat(self, xs, axis=1):
        return self.op("Concat", list(xs), axis=axis)

    def maxpool(self, x, k, stride, pad=0, ceil=False):
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4, ceil_mode=int(ceil))

    def avgpool(self, x, k, stride, pad=0):
        return self.op("AveragePool", [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def global_avgpool(self, x):
        return self.op("GlobalAveragePool", [x])

    def flatten(self, x):
        return self.op("Flatten", [x], axis=1)

    # -- model -------------------------------------------------------------------------------------
    def build(self, outputs: dict[str, Sequence[int | str]] | list[tuple[str, list]]) -> onnx.ModelProto:
        """Finish the model; `outputs` maps tensor name -> shape without the batch dim."""
        items = outputs.items() if isinstance(outputs, dict) else outputs
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [BATCH_DIM, *shape]) for n, shape in items]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, outs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="staronnx-zoo")
        model.ir_version = IR_VERSION
        return model


def parameter_count(model: onnx.ModelProto) -> int:
    """Trainable parameters as PyTorch counts them: float initializers that are not BN buffers."""
    total = 0
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name.endswith(BUFFER_SUFFIXES):
            continue
        if init.name.startswith("const_"):
            continue
        total += int(np.prod(init.dims)) if init.dims else 1
    return total
