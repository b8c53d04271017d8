"""Run the full model and the chained parts on the same random batch; compare outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import modelio
from ..inputdata import RANDOM, InputData
from ..ortenv import session_options


def run_chain(part_files: list[Path], feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Run parts in order; each reads model inputs and earlier parts' outputs from one pool of tensors. Each part's
    batch dimensions are fixed as a sweep fixes them, so that a dimension wrongly named is caught here."""
    pool = dict(feeds)
    for file in part_files:
        so = session_options()
        for dim, size in modelio.batch_dim_values(modelio.load_model(file, with_weights=False), batch):
            so.add_free_dimension_override_by_name(dim, size)
        session = ort.InferenceSession(str(file), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, {i.name: pool[i.name] for i in session.get_inputs()})
        pool.update(zip(names, values))
    return pool


def verify(model_path: Path, part_files: list[Path], batch: int, seed: int = 0, data: InputData = RANDOM) -> dict:
    """Max abs difference of every model output between the full model and the chain of parts."""
    model = modelio.load_model(model_path, with_weights=False)
    specs = modelio.input_specs(model)
    feeds = data.feeds(specs, batch, seed)
    full = ort.InferenceSession(str(model_path), session_options(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in full.get_outputs()], full.run(None, feeds)))
    chained = run_chain(part_files, feeds, batch)
    numeric = {name: value for name, value in expected.items() if _numbers(value)}  # a ZipMap's maps: not compared
    diffs = {name: _difference(chained[name], value) for name, value in numeric.items()}
    scale = max((float(np.nanmax(np.abs(v))) for v in numeric.values() if np.isfinite(v).any()), default=1.0)
    worst = float("nan") if any(d != d for d in diffs.values()) else max(diffs.values(), default=0.0)
    # the coarsest float output's step: float16 parts round at each cut where the whole model kept float32
    eps = max((float(np.finfo(v.dtype).eps) for v in numeric.values() if v.dtype.kind == "f"), default=0.0)
    return {"batch": batch, "max_abs_diff": worst, "per_output": diffs, "output_scale": scale, "output_eps": eps,
            "not_compared": sorted(set(expected) - set(numeric)),
            "no_finite_output": bool(numeric) and not any(np.isfinite(v).any() for v in numeric.values())}


def _numbers(value) -> bool:
    """A tensor of numbers (or bools): what can be compared; a sequence of maps (scikit-learn's ZipMap) is not."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "fiub"


def _difference(got, want: np.ndarray) -> float:
    """The largest absolute difference; NaN where one side has it and the other not (a Log of random inputs gives
    NaN on both sides: equal), 0.0 for an empty output."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if not want.size:
        return 0.0
    if got.shape != want.shape or (np.isnan(got) != np.isnan(want)).any():
        return float("nan")
    both = ~np.isnan(want)
    return float(np.max(np.abs(got[both] - want[both]), initial=0.0))
