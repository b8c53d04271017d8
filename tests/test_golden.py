"""The simulated engine's files, byte for byte, against files written before a refactoring: a change of structure
must not change one number. Regenerate them (only for an intended change of behaviour, said in the commit) with
STARONNX_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py."""

import json
import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "golden_sim"
ENVIRONMENT_KEYS = {"command", "staronnx", "onnxruntime", "python", "cpu", "cores", "gpu", "target", "host",
                    "platform", "model_sha256"}  # this machine and checkout, not the run's behaviour


def comparable_meta(path: Path) -> bytes:
    meta = json.loads(path.read_text())
    kept = {k: v for k, v in meta.items() if k not in ENVIRONMENT_KEYS}
    return (json.dumps(kept, indent=1, sort_keys=True) + "\n").encode()


def test_a_seeded_heterogeneous_simulated_sweep_writes_the_same_bytes_as_before(cli, tiny_cnn_path, tmp_path):
    run = tmp_path / "run"
    result = cli("sweep", tiny_cnn_path, "--engine", "sim", "--platform", GOLDEN / "platform.toml", "--batch", "1,2,4",
                 "--rate", "100,400,900,1500", "--batches", "40", "--warmup", "3", "--arrival", "poisson",
                 "--sim-noise", "--seed", "7", "-o", run)
    assert result.exit_code == 0, result.stderr
    assert "--arrival poisson with --batches 40: near the capacity" in result.output  # the note naming the fix
    written = {"points.csv": (run / "points.csv").read_bytes(), "batches.csv": (run / "batches.csv").read_bytes(),
               "run.json": comparable_meta(run / "run.json")}
    if os.environ.get("STARONNX_WRITE_GOLDEN"):
        for name, text in written.items():
            (GOLDEN / name).write_bytes(text)
    for name, text in written.items():
        assert text == (GOLDEN / name).read_bytes(), f"{name} differs from tests/data/golden_sim/{name}"
