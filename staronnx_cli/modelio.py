"""Loading a user's ONNX model with the checks that turn confusing ORT errors into one clear line."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper

from .errors import UserError


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # without the batch dimension
    batch_dim: str  # the symbolic name of the batch dimension ("" if ORT must infer it)
    high: int = 2  # integers are drawn from [0, high): 0 or 1, or the rows of the table they index
    batched: bool = True  # False: a fixed-shape input (a threshold, a TopK's k) given whole to every batch


def whole_inputs(specs: list[InputSpec]) -> frozenset[str]:
    """The inputs given whole to every batch (shape is all of theirs, no batch axis): never sliced by rows."""
    return frozenset(s.name for s in specs if not s.batched)


def leading_rows(feeds: dict[str, np.ndarray], size: int, whole: frozenset[str]) -> dict[str, np.ndarray]:
    """A batch of `size` from feeds made for the largest: the first rows of each batched input, the others whole."""
    return {name: value if name in whole else value[:size] for name, value in feeds.items()}


def sha256_of(path: Path) -> str:
    if not Path(path).is_file():  # a FIFO or a device would be read for ever
        raise UserError(f"'{path}' is not a regular file (a pipe or a device is read for ever): give a file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


MAX_MODEL_BYTES = 2**31  # protobuf's limit for one message: weights beyond it live in external data files


def load_model(path: str | Path, with_weights: bool = True) -> onnx.ModelProto:
    """Parse and check a model file; external data must stay inside the model's folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file '{path}' not found: check the path, or build one with "
                        f"'staronnx zoo build googlenet -o {path}'")
    if path.is_dir():
        raise UserError(f"'{path}' is a directory, not an ONNX model file: give the path of a .onnx file")
    if not path.is_file():  # a device (a link to /dev/zero would be read forever), a pipe, a socket
        raise UserError(f"'{path}' is not a regular file: give the path of a .onnx file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise UserError(f"'{path}' is {path.stat().st_size / 2**30:.1f} GiB, more than an ONNX file can hold (2 GiB): "
                        "large weights belong in external data beside it (onnx.save_model(..., "
                        "save_as_external_data=True))")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for garbage input
        raise UserError(f"'{path}' is not an ONNX model ({type(exc).__name__}): "
                        "give a file exported with torch.onnx.export or built with 'staronnx zoo build'") from None
    if not model.graph.output:
        raise UserError(f"'{path}' is not an ONNX model (its graph has no output): "
                        "give a file exported with torch.onnx.export or built with 'staronnx zoo build'")
    if not model.graph.node:  # a valid model (its output an input or a constant), but nothing to run or measure
        raise UserError(f"'{path}' has no node to run: its outputs are its inputs or constants, so there is nothing "
                        "to measure; give the model that computes them")
    _check_external_data(model, path)
    if with_weights:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    return model


def _check_external_data(model: onnx.ModelProto, path: Path) -> None:
    folder = path.parent.resolve()
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UserError(f"tensor '{tensor.name}' of '{path}' points to external data '{location}' "
                            "outside the model's folder: move the data file beside the model")
        if not target.exists():
            raise UserError(f"external data file '{location}' of '{path}' is missing: "
                            "copy it beside the model")


_BATCH_NAMES = re.compile(r"^(n|b|bs|bsz|batch|batch_?size|.*_batch|batch_.*|.*batch_size)$", re.IGNORECASE)
_SEQUENCE_NAMES = re.compile(r"^(s|t|seq|seq_?len(gth)?|sequence(_?len(gth)?)?|src_?len|tgt_?len|time|time_?steps?|"
                             r"len(gth)?|num_frames|frames|tokens?)$", re.IGNORECASE)


def batch_not_first(name: str, dims: list) -> str:
    """Why an input whose batch dimension, by its name, is not its first (a sequence-first [seq, batch, hidden])
    cannot be swept: fixing it would sweep the first axis as the batch size; '' for any other."""
    first = (dims[0].dim_param or (str(dims[0].dim_value) if dims[0].HasField("dim_value") else "")) if dims else ""
    later = [(axis, d.dim_param) for axis, d in enumerate(dims) if axis and _BATCH_NAMES.match(d.dim_param or "?")]
    if (not later or _BATCH_NAMES.match(first or "?")) and len(dims) > 1 and \
            _SEQUENCE_NAMES.match(dims[0].dim_param or "?"):  # [seq, 8, 64]: its batch fixed at 8
        return (f"input '{name}' has a first dimension named '{first}', a sequence's length by its name: staronnx "
                "batches the first axis (it would sweep the sequence as the batch size); export the model "
                "batch-first (e.g. batch_first=True) and give that")
    if not later or _BATCH_NAMES.match(first or "?"):
        return ""
    axis, batch = later[0]
    return (f"input '{name}' has its batch dimension ('{batch}') on axis {axis}, after '{first or '?'}': staronnx "
            f"batches the first axis (it would take '{first or '?'}' for the batch); export the model batch-first "
            "(e.g. batch_first=True) and give that")


def _free_dims_fix(name: str, dims: list) -> str:
    """A model whose input has free dimensions besides the batch (a sequence length): the --shape that fixes them
    at the size to measure (input_specs said a batch not first before)."""
    free = [d.dim_param or "?" for d in dims[1:] if not d.HasField("dim_value")]
    dims = dims[1:]
    sizes = ",".join("SIZE" if not d.HasField("dim_value") else str(d.dim_value) for d in dims)
    example = ",".join("128" if not d.HasField("dim_value") else str(d.dim_value) for d in dims)
    return (f"input '{name}' has free dimensions {free} besides the batch: staronnx measures one shape; give the "
            f"sizes to measure with --shape {name}:{sizes} (e.g. --shape {name}:{example})")


PASSED_ON = {"Cast", "Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten"}  # the same indices, reshaped or cast


def index_bounds(model: onnx.ModelProto) -> dict[str, int]:
    """An integer input's exclusive bound where it indexes a table: the rows of each weight a Gather reads it into
    (token ids over a vocabulary of 30,522, token types over the 1 or 2 rows a RoBERTa has; random 0 or 1 asked a
    one-row table for its row 1), the fewest of them; through Casts and reshapes."""
    tables = {i.name: list(i.dims) for i in model.graph.initializer}
    origin = {v.name: v.name for v in model.graph.input if v.name not in tables}
    bounds: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in PASSED_ON and node.input and node.input[0] in origin:
            origin.update({out: origin[node.input[0]] for out in node.output if out})
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in origin and node.input[0] in tables:
            dims = tables[node.input[0]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            if -len(dims) <= axis < len(dims) and dims[axis] > 0:
                source = origin[node.input[1]]
                bounds[source] = min(bounds.get(source, dims[axis]), dims[axis])
    return bounds


def _free_dims_fixes(free: list[tuple[str, list]]) -> str:
    """Every input that needs a size, in one line: an input whose free dimensions an earlier one names already
    (attention_mask's 'seq', as input_ids') needs none of its own; an unnamed one does."""
    covered: set[str] = set()
    needed = []
    for name, dims in free:
        named = {d.dim_param for d in dims[1:] if not d.HasField("dim_value")}
        if "" in named or not named <= covered:
            needed.append((name, dims))
        covered |= named - {""}
    if len(needed) == 1:
        return _free_dims_fix(*needed[0])
    flags = " ".join(f"--shape {name}:" + ",".join("SIZE" if not d.HasField("dim_value") else str(d.dim_value)
                                                   for d in dims[1:]) for name, dims in needed)
    return (f"inputs {', '.join(repr(name) for name, _ in needed)} have free dimensions besides the batch: staronnx "
            f"measures one shape; give the sizes to measure with {flags} (SIZE e.g. 128)")


def _fixed(dims: list) -> bool:
    return all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)


def _given_whole(dims: list) -> bool:
    """A fixed input beside batched ones that is given whole: a scalar, a vector ([1] k, a [16] scale), or a
    table not led by 1 ([8, 64]). A fixed [1, 128] beside a batched input is a batch axis the export forgot
    (dynamic axes set on input_ids only): refused with the fix, as a model exported at batch 1 is, not fed one
    query's mask for every query of a batch."""
    return _fixed(dims) and (len(dims) <= 1 or dims[0].dim_value != 1)


def _whole_spec(value: onnx.ValueInfoProto, dims: list, high: int) -> InputSpec:
    """A fixed-shape input beside batched ones (a scalar threshold, a TopK's k of shape [1]): every batch gets it
    whole, as ONNX Runtime would take it from a caller serving one query or many."""
    ttype = value.type.tensor_type
    dtype = _feedable(value.name, ttype.elem_type)
    return InputSpec(value.name, dtype, tuple(d.dim_value for d in dims), "", high, batched=False)


def _feedable(name: str, elem_type: int) -> np.dtype:
    if not elem_type:  # no type at all: nothing to make a tensor of
        raise UserError(f"input '{name}' has no element type: export the model with typed inputs")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    if dtype.kind not in "fiub":  # strings, bfloat16, float8, complex: no random batch we can make or pass on
        raise UserError(f"input '{name}' is of type {onnx.TensorProto.DataType.Name(elem_type)}: "
                        "staronnx feeds float, integer and bool inputs only; export the model with such an input "
                        "(a Cast inside it)")
    return dtype


def input_specs(model: onnx.ModelProto, names: set[str] | None = None) -> list[InputSpec]:
    """The model's real inputs (not initializers), each with a batch dimension first, or of a fixed shape beside
    such inputs (given whole to every batch); with `names`, only those (a part's inputs that are the model's: the
    others may carry the batch on another axis)."""
    initializers = {i.name for i in model.graph.initializer}
    real = [v for v in model.graph.input if v.name not in initializers]
    batched_beside = any(not _fixed(list(v.type.tensor_type.shape.dim)) for v in real)
    specs, free, bounds = [], [], index_bounds(model)
    for value in real:
        if names is not None and value.name not in names:
            continue
        ttype = value.type.tensor_type
        dims = list(ttype.shape.dim)
        if batched_beside and _given_whole(dims) and value.type.HasField("tensor_type") and ttype.HasField("shape"):
            specs.append(_whole_spec(value, dims, bounds.get(value.name, 2)))
            continue
        if not dims:
            raise UserError(f"input '{value.name}' has no batch dimension (it is a scalar or has no shape)"
                            + (", and no other input has one" if not batched_beside else "")
                            + ": re-export the model with a dynamic first axis (torch.onnx.export dynamic_axes)")
        first, rest = dims[0], dims[1:]
        if not_first := batch_not_first(value.name, dims):
            raise UserError(not_first)
        if first.HasField("dim_value") and first.dim_value != 0:
            raise UserError(f"input '{value.name}' has a fixed first dimension {first.dim_value}, not a batch "
                            "dimension: re-export with a dynamic batch axis (torch.onnx.export dynamic_axes)"
                            + (", or free it in place as docs/profile.md shows ('A model exported at batch 1')"
                               if first.dim_value == 1 else ""))
        if any(not d.HasField("dim_value") for d in rest):
            free.append((value.name, dims))  # said once for every input that needs a size
            continue
        negative = [d.dim_value for d in rest if d.dim_value < 0]
        if negative:  # -1 (a "free" dimension some exporters write as a size): no batch can be made of it
            raise UserError(f"input '{value.name}' has a dimension of size {negative[0]}, which no tensor has: "
                            "re-export the model with that dimension named (a symbolic dimension) or fixed")
        dtype = _feedable(value.name, ttype.elem_type)
        specs.append(InputSpec(value.name, dtype, tuple(d.dim_value for d in rest), first.dim_param,
                               bounds.get(value.name, 2)))
    if free:
        raise UserError(_free_dims_fixes(free))
    if not specs:
        raise UserError("the model has no inputs (every input is an initializer): nothing to feed a batch to")
    return specs


def plan_input_specs(protos: list[onnx.ModelProto]) -> list[InputSpec]:
    """The model inputs of a plan's parts (read by a part, made by none), each from the first part that reads it:
    a later part may read one that the first does not (a scale applied at the end)."""
    produced: set[str] = set()
    for proto in protos:  # a part's output that is its own input passed through is not made by it
        own = {i.name for i in proto.graph.input}
        produced |= {o.name for o in proto.graph.output if o.name not in own}
    found: dict[str, InputSpec] = {}
    tables: dict[str, int] = {}  # an integer input's rows, the fewest of every table any part indexes with it
    for proto in protos:
        weights = {i.name for i in proto.graph.initializer}
        wanted = {i.name for i in proto.graph.input} - weights - produced
        for name, rows in index_bounds(proto).items():
            if name in wanted:
                tables[name] = min(tables.get(name, rows), rows)
        for spec in input_specs(proto, wanted) if wanted else []:
            found.setdefault(spec.name, spec)
    return [replace(s, high=tables[s.name]) if s.name in tables else s for s in found.values()]


def check_node_names(model: onnx.ModelProto) -> None:
    """profile and split know a node by its name (ONNX Runtime's profiler names its events so): a node without
    one, or a name used twice, is one line with the fix (unnamed nodes were profiled as 0 us each)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            what = "has no name" if not node.name else f"is named {node.name!r} like an earlier node"
            raise UserError(f"node #{i} ({node.op_type}) {what}: staronnx times nodes by name; give each node a "
                            "unique name, e.g. in Python: for i, n in enumerate(m.graph.node): "
                            "n.name = f'{n.name or n.op_type}_{i}' (then onnx.save)")
        seen.add(node.name)


PART_BATCH_DIM = "batch"
"""The batch dimension's name in the tensors between a plan's parts (split/tensors.py), on whichever axis it is;
"batch*K" names an axis of K rows per sample (an FFN on [batch*seq, hidden], as older exports write it)."""


def batch_multiple(dim: str) -> int:
    """Rows per sample of a part's dimension so named: 1 for PART_BATCH_DIM, K for "batch*K", 0 for any other."""
    if dim == PART_BATCH_DIM:
        return 1
    head, _, k = dim.partition("*")
    return int(k) if head == PART_BATCH_DIM and k.isdigit() and int(k) > 0 else 0


def batch_dims(model: onnx.ModelProto) -> list[str]:
    """The names of the batch dimension among a model's or a part's inputs: a model input's first dimension
    (input_specs holds a model's inputs to that), and PART_BATCH_DIM on any axis: a part's input may be a tensor
    cut after a Transpose, its batch on the second axis."""
    initializers = {i.name for i in model.graph.initializer}
    names = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        names += [d.dim_param for i, d in enumerate(dims) if d.dim_param and (i == 0 or batch_multiple(d.dim_param))]
    return list(dict.fromkeys(names))


def batch_dim_values(model: onnx.ModelProto, batch: int) -> list[tuple[str, int]]:
    """Each batch dimension's size at this batch size (ORT's free-dimension overrides): "batch*K" is K x batch."""
    return [(dim, batch * max(1, batch_multiple(dim))) for dim in batch_dims(model)]


def random_inputs(specs: list[InputSpec], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of random inputs; integer inputs 0 or 1 (masks, indices), or over the rows of the table they index
    (`index_bounds`). An input given whole to every batch is the same at every batch size (drawn apart from the
    batched ones); a whole integer is 1 where no table bounds it (a TopK's k, a count: 0 would ask for nothing)."""
    rng = np.random.default_rng(seed)
    feeds = {spec.name: _whole_value(spec, seed) for spec in specs if not spec.batched}
    for spec in specs:
        if not spec.batched:
            continue
        shape = (batch, *spec.shape)
        if np.issubdtype(spec.dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[spec.name] = rng.integers(0, spec.high, shape).astype(spec.dtype)
    return feeds


def _whole_value(spec: InputSpec, seed: int) -> np.ndarray:
    if spec.dtype.kind == "f":
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(spec.name.encode()).digest()[:4], "big")])
        return rng.standard_normal(spec.shape).astype(spec.dtype)
    if spec.dtype == np.bool_:
        return np.ones(spec.shape, bool)
    return np.full(spec.shape, 1 if spec.high > 1 else 0, spec.dtype)


def shape_skeleton(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A light copy for shape inference: batch fixed, large weights replaced by typed inputs.

    Small initializers (shape constants, axes) stay, so data propagation can compute Reshape targets.
    """
    graph = onnx.GraphProto()
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    for value in model.graph.input:
        fixed = graph.input.add()
        fixed.CopyFrom(value)
        dims = fixed.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    for init in model.graph.initializer:
        if int(np.prod(init.dims)) <= 1024 and not external_data_helper.uses_external_data(init):
            graph.initializer.append(init)
        else:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    skeleton = helper.make_model(graph, opset_imports=model.opset_import)
    skeleton.ir_version = model.ir_version
    return skeleton


def tensor_bytes_by_node(model: onnx.ModelProto, batch: int) -> dict[str, int]:
    """Bytes each node writes (sum of its outputs) at this batch size, where shape inference knows them."""
    try:
        inferred = onnx.shape_inference.infer_shapes(shape_skeleton(model, batch), data_prop=True)
    except Exception:  # noqa: BLE001 - unknown shapes are reported as unknown, never as zero
        return {}
    sizes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        ttype = value.type.tensor_type
        dims = ttype.shape.dim
        if ttype.elem_type and dims and all(d.HasField("dim_value") for d in dims):
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).itemsize
            sizes[value.name] = int(np.prod([d.dim_value for d in dims])) * itemsize
    result = {}
    for node in model.graph.node:
        outs = [t for t in node.output if t]
        if outs and all(t in sizes for t in outs):
            result[node.name] = sum(sizes[t] for t in outs)
    return result
