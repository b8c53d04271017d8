"""What a sweep runs: a model file or a plan directory, as part files and the graph of parts (with bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import helper

from .. import modelio
from ..errors import UserError
from ..runtime.scheduler import PartGraph
from ..split.plan import read_plan


@dataclass
class Target:
    part_files: list[Path]
    graph: PartGraph
    model_sha256: str
    plan_sha256: str
    offload_fraction: float = 0.0  # of the plan: compute share of the later parts (0 for a whole model)
    split_method: str = ""
    costs_device: str = ""  # of the plan: the device its costs were profiled on (cpu:K, cuda:I)
    members: list[Member] = field(default_factory=list)  # a mix: its models, parts numbered one after the other

    def parts_of(self, m: int) -> range:
        """The union's parts of model m (a single model: all of them)."""
        if not self.members:
            return range(len(self.part_files))
        member = self.members[m]
        return range(member.first_part, member.first_part + len(member.target.part_files))


@dataclass
class Member:
    """One model of a mix: its own target, and where its parts start among the mix's."""

    name: str
    target: Target
    first_part: int


def mix_target(named: list[tuple[str, Target]]) -> Target:
    """Several targets as one: part files and part graphs joined (PartGraph.union), each member kept."""
    members, first = [], 0
    for name, target in named:
        members.append(Member(name, target, first))
        first += len(target.part_files)
    import hashlib

    key = hashlib.sha256(" ".join(f"{n}:{t.model_sha256}:{t.plan_sha256}" for n, t in named).encode()).hexdigest()
    return Target([f for _, t in named for f in t.part_files], PartGraph.union([t.graph for _, t in named]), key, "",
                  members=members)


def load_target(path: Path) -> Target:
    if path.is_dir():
        plan = read_plan(path)
        if plan.verification.get("passed") is False:  # kept for inspection: its parts do not compute the model
            raise UserError(f"plan '{path}' failed its verification (its parts differ from the model by "
                            f"{plan.verification.get('max_abs_diff')}): split again (--verify-tolerance, if that is "
                            "rounding), or split again with --no-verify to sweep it unchecked")
        files = [path / p.file for p in plan.parts]
        outside = [p.file for p, f in zip(plan.parts, files) if f.resolve().parent != path.resolve()]
        if outside:
            raise UserError(f"plan '{path}' names a part file outside its directory ({outside[0]}): recreate it with "
                            "'staronnx split'")
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise UserError(f"plan '{path}' lacks its part file {missing[0]}: recreate it with 'staronnx split'")
        changed = [f.name for p, f in zip(plan.parts, files) if p.sha256 and modelio.sha256_of(f) != p.sha256]
        if changed:
            raise UserError(f"plan '{path}': {changed[0]} is not the file split wrote (sha256 differs): recreate the "
                            "plan with 'staronnx split'")
        source = Path(plan.source_model)
        if source.exists() and modelio.sha256_of(source) != plan.source_sha256:
            raise UserError(f"plan '{path}' was made from another version of {source} (sha256 differs): "
                            "split the model again")
        deps = [sorted({e.source for e in plan.edges if e.target == i and e.source >= 0}) for i in range(len(files))]
        sizes = [{e.source: e.bytes_per_sample for e in plan.edges if e.target == i} for i in range(len(files))]
        final = [sum(t.bytes_per_sample for t in p.outputs if t.name in plan.model_outputs) for p in plan.parts]
        graph = PartGraph(deps, sizes, final, launch_order=plan.dag.get("launch_order"),
                          model_outputs=tuple(plan.model_outputs))
        return Target(files, graph, plan.source_sha256, modelio.sha256_of(path / "plan.json"),
                      plan.achieved_fraction, plan.method, plan.device)
    model = modelio.load_model(path, with_weights=False)
    specs = modelio.input_specs(model)
    per_sample = sum(int(np.prod(s.shape)) * s.dtype.itemsize for s in specs if s.batched)  # a whole one: a few B
    return Target([path], PartGraph([[]], [{-1: per_sample}], [_output_bytes_per_sample(model)]),
                  modelio.sha256_of(path), "")


def _output_bytes_per_sample(model) -> int:
    """Bytes per sample of the model's outputs, from their declared shapes (0 where a dimension is unknown)."""
    total = 0
    for value in model.graph.output:
        ttype = value.type.tensor_type
        rest = list(ttype.shape.dim)[1:]
        if ttype.elem_type and all(d.HasField("dim_value") for d in rest):
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).itemsize
            total += int(np.prod([d.dim_value for d in rest])) * itemsize
    return total
