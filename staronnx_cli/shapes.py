"""`--shape INPUT:D1,D2`: an input's dimensions after the batch fixed at the sizes to measure (a sequence length), as
perf_analyzer's `--shape` does. The sizes are written into a copy of the model kept in the cache, so that every
command after this one sees a model whose only free dimension is the batch, and the copy's name says the shape
(`bert.input_ids-128.onnx`: results, plots and reports of two sequence lengths are told apart)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from . import modelio
from .cachedir import cache_dir
from .errors import UserError
from .outputfile import write_text_atomic
from .zoo.names import display_name, source_file, typed_name

EXAMPLE = "--shape input_ids:128"
_SHAPE = re.compile(r"^\s*(.+?)\s*:\s*([0-9][0-9,\s]*)$")  # the last ':' (tf2onnx names inputs 'input_ids:0')


@dataclass(frozen=True)
class InputShape:
    name: str
    dims: tuple[int, ...]  # after the batch

    def words(self) -> str:
        return f"{self.name}:{','.join(map(str, self.dims))}"


def parse_shapes(texts: list[str]) -> list[InputShape]:
    """'input_ids:128' (repeatable; an input's sizes after the batch, comma separated) -> InputShape."""
    shapes: dict[str, InputShape] = {}
    for text in texts:
        found = _SHAPE.match(text)
        dims = tuple(int(d) for d in found.group(2).split(",") if d.strip()) if found else ()
        if not found or not dims:
            raise UserError(f"--shape '{text}': write INPUT:SIZES, the input's sizes after the batch, e.g. {EXAMPLE} "
                            "or --shape pixel_values:3,224,224")
        if not all(0 < d <= 2**31 for d in dims):
            raise UserError(f"--shape '{text}': every size must be from 1 to 2^31, e.g. {EXAMPLE}")
        if found.group(1) in shapes and shapes[found.group(1)].dims != dims:
            raise UserError(f"--shape gives input '{found.group(1)}' twice with different sizes: give it once")
        shapes[found.group(1)] = InputShape(found.group(1), dims)
    return list(shapes.values())


def shape_slug(shapes: list[InputShape]) -> str:
    """The shape in a file name (and so in every result's model name): 'input_ids-128', 'x-16x16.m-4'."""
    slug = ".".join(f"{s.name}-{'x'.join(map(str, s.dims))}" for s in shapes)
    return re.sub(r"[^A-Za-z0-9._-]", "_", slug)[:120]


def _sizes(model: onnx.ModelProto, shapes: list[InputShape]) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
    """The sizes `shapes` give: by dimension name (every tensor naming it), and by (input, axis) for unnamed ones."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = {v.name: v for v in model.graph.input if v.name not in initializers}
    named: dict[str, int] = {}
    unnamed: dict[tuple[str, int], int] = {}
    for shape in shapes:
        if shape.name not in inputs:
            raise UserError(f"--shape {shape.words()}: the model has no input '{shape.name}'; its inputs: "
                            f"{', '.join(inputs)}")
        dims = list(inputs[shape.name].type.tensor_type.shape.dim)
        batch = dims[0].dim_param if dims else ""
        if not_first := modelio.batch_not_first(shape.name, dims):
            raise UserError(not_first)
        fixed = [d.dim_value for d in dims] if all(d.HasField("dim_value") for d in dims) else None
        if fixed is not None and (fixed[1:] == list(shape.dims) or fixed == list(shape.dims)):
            continue  # the sizes it has (as a sweep of one sequence length given again): nothing to do
        if fixed is not None:  # a scalar or a fixed [16]: nothing is free in it
            raise UserError(f"--shape {shape.words()}: input '{shape.name}' has a fixed shape "
                            f"[{','.join(str(d.dim_value) for d in dims)}], nothing to fix: drop this --shape")
        if len(dims) - 1 != len(shape.dims):
            now = ",".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in dims[1:])
            raise UserError(f"--shape {shape.words()}: input '{shape.name}' has {len(dims) - 1} dimension(s) after "
                            f"the batch ([{now}]): give {len(dims) - 1} size(s)")
        for axis, (dim, size) in enumerate(zip(dims[1:], shape.dims), start=1):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise UserError(f"--shape {shape.words()}: dimension {axis} of '{shape.name}' is fixed at "
                                f"{dim.dim_value} in the model, not {size}: give {dim.dim_value} there")
            if dim.dim_param and dim.dim_param == batch:
                raise UserError(f"--shape {shape.words()}: dimension {axis} of '{shape.name}' is the batch "
                                f"('{batch}', the first axis too): the batch is swept with --batch, not fixed")
            if dim.dim_param:
                if named.get(dim.dim_param, size) != size:
                    raise UserError(f"--shape gives dimension '{dim.dim_param}' two sizes ({named[dim.dim_param]} "
                                    f"and {size}): the inputs sharing it must agree")
                named[dim.dim_param] = size
            elif not dim.HasField("dim_value"):
                unnamed[(shape.name, axis)] = size
    return named, unnamed


def _fix(model: onnx.ModelProto, named: dict[str, int], unnamed: dict[tuple[str, int], int]) -> None:
    """Write the sizes into the model's inputs, outputs and recorded shapes (the first axis of inputs excepted)."""
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            size = unnamed.get((value.name, axis)) or (named.get(dim.dim_param) if dim.dim_param else None)
            if size:
                dim.dim_value = size  # clears dim_param (one of)


def shaped_model(path: Path, texts: list[str], say: Callable[[str], None] = lambda text: None) -> Path:
    """`path` itself without --shape; else the cached copy with those sizes fixed, made on first use (said)."""
    if not texts:
        return path
    shapes = parse_shapes(texts)
    skeleton = modelio.load_model(path, with_weights=False)
    named, unnamed = _sizes(skeleton, shapes)
    if not named and not unnamed:  # the sizes the model has already: itself, under its own name
        return path
    _fix(skeleton, named, unnamed)
    modelio.input_specs(skeleton)  # what is still free, or a batch not first: one line, before any copy is made
    words = " ".join(s.words() for s in shapes)
    slug = shape_slug(shapes)
    maker = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # a copy made by other code is made again
    digest = hashlib.sha256(f"{modelio.sha256_of(path)}|{words}|{maker}".encode()).hexdigest()[:12]
    folder = cache_dir() / "shaped" / digest
    copy = folder / f"{display_name(Path(path))}.{slug}.onnx"  # a zoo model's name, not its cache file's
    if copy.is_file():
        say(f"--shape {words}: the model with these sizes, cached at {copy}")
        return copy
    model = modelio.load_model(path)
    _fix(model, named, unnamed)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{copy.name}.{os.getpid()}.tmp"
    large = model.ByteSize() > modelio.MAX_MODEL_BYTES // 2
    try:
        onnx.save_model(model, str(staging), save_as_external_data=large, all_tensors_to_one_file=True,
                        location=copy.stem + ".data", size_threshold=1024)
        write_text_atomic(source_file(copy), json.dumps({"model": typed_name(Path(path)),
                                                         "shape": [s.words() for s in shapes]}))
        os.replace(staging, copy)  # last: a copy cut short is never found
    finally:
        staging.unlink(missing_ok=True)  # a full disk left it behind
    say(f"--shape {words}: the model with these sizes written to {copy}")
    return copy
