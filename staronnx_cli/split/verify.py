"""Run the full model and the chained parts on the same random batch; compare outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .. import modelio
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


def verify(model_path: Path, part_files: list[Path], batch: int, seed: int = 0) -> dict:
    """Max abs difference of every model output between the full model and the chain of parts."""
    model = modelio.load_model(model_path, with_weights=False)
    specs = modelio.input_specs(model)
    feeds = modelio.random_inputs(specs, batch, seed)
    full = ort.InferenceSession(str(model_path), session_options(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in full.get_outputs()], full.run(None, feeds)))
    chained = run_chain(part_files, feeds, batch)
    diffs = {name: float(np.max(np.abs(np.asarray(chained[name], np.float64) - np.asarray(value, np.float64))))
             if np.asarray(value).size else 0.0 for name, value in expected.items()}
    scale = max((float(np.max(np.abs(v))) for v in expected.values() if np.asarray(v).size), default=1.0)
    return {"batch": batch, "max_abs_diff": max(diffs.values()), "per_output": diffs, "output_scale": scale}
