"""Performance models: per (part, worker kind, batch size), the running mean and variance of execution time.

StarPU's calibration: the first sample of a key is dropped (cold caches, lazy allocations), a key is
calibrated after 10 kept samples, and once calibrated a sample beyond mean + 5 std is not learned from, unless
10 such come in a row: the times moved, and the model restarts from them.
Beyond 1,000 kept samples the mean and variance weigh the newest sample 1 / 1,000 (an exponential window), so a
cache reused for weeks tracks the machine as it is, not its whole history. Saved as JSON and reused (keyed by
host and model sha256 by the caller).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..outputfile import write_text_atomic

CALIBRATION_SAMPLES = 10
WINDOW = 1000  # samples: beyond it, each new one weighs 1 / WINDOW (the C core's learn() keeps the same rule)
OUTLIER_STDS = 5  # a calibrated model counts a sample beyond mean + this many std as an outlier (C: the same)


@dataclass
class Stats:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    dropped_first: bool = False
    outliers: int = 0  # samples beyond mean + OUTLIER_STDS std in a row, and their own mean and m2
    outlier_mean: float = 0.0
    outlier_m2: float = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def add(self, value: float) -> None:
        if not self.dropped_first:
            self.dropped_first = True
            return
        if self.count >= CALIBRATION_SAMPLES and value > self.mean + OUTLIER_STDS * max(self.std, 1e-6):
            self._outlier(value)
            return
        self.outliers, self.outlier_mean, self.outlier_m2 = 0, 0.0, 0.0
        if self.count >= WINDOW:  # the window's variance kept, as if it held WINDOW - 1 samples
            self.m2 *= (WINDOW - 2) / (self.count - 1)
            self.count = WINDOW - 1
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def _outlier(self, value: float) -> None:
        """Not learnt, but counted: CALIBRATION_SAMPLES of them in a row mean the times moved (a neighbour on the
        memory bus, a colder cache at a lower rate than calibration's back-to-back runs), and the model restarts
        from them. Without it a model calibrated with a small std never learnt again (StarPU flushes a history
        model whose errors outnumber its samples)."""
        self.outliers += 1
        delta = value - self.outlier_mean
        self.outlier_mean += delta / self.outliers
        self.outlier_m2 += delta * (value - self.outlier_mean)
        if self.outliers >= CALIBRATION_SAMPLES:
            self.count, self.mean, self.m2 = self.outliers, self.outlier_mean, self.outlier_m2
            self.outliers, self.outlier_mean, self.outlier_m2 = 0, 0.0, 0.0


class PerfModel:
    def __init__(self):
        self.stats: dict[tuple[int, str, int], Stats] = {}

    def record(self, part: int, kind_key: str, batch: int, seconds: float) -> None:
        self.stats.setdefault((part, kind_key, batch), Stats()).add(seconds)

    def calibrated(self, part: int, kind_key: str, batch: int) -> bool:
        s = self.stats.get((part, kind_key, batch))
        return s is not None and s.count >= CALIBRATION_SAMPLES

    def predict(self, part: int, kind_key: str, batch: int) -> float | None:
        s = self.stats.get((part, kind_key, batch))
        return s.mean if s is not None and s.count > 0 else None

    @classmethod
    def merged(cls, models: list[tuple[PerfModel, int]]) -> PerfModel:
        """A mix's models as one: each model's parts renumbered from its first part in the mix."""
        out = cls()
        for model, first in models:
            out.stats.update({(part + first, kind, batch): s for (part, kind, batch), s in model.stats.items()})
        return out

    def parts(self, first: int, count: int) -> PerfModel:
        """One model of a mix, parts numbered from 0 again (what its own cache file holds)."""
        out = PerfModel()
        out.stats = {(part - first, kind, batch): s for (part, kind, batch), s in self.stats.items()
                     if first <= part < first + count}
        return out

    def save(self, path: Path) -> None:
        """Atomically (a temporary file renamed over the old one): a crash never leaves a torn cache."""
        rows = [{"part": p, "kind": k, "batch": b, "count": s.count, "mean_s": s.mean, "m2": s.m2,
                 **({"outliers": s.outliers, "outlier_mean_s": s.outlier_mean, "outlier_m2": s.outlier_m2}
                    if s.outliers else {})}
                for (p, k, b), s in sorted(self.stats.items()) if math.isfinite(s.mean) and math.isfinite(s.m2)]
        write_text_atomic(path, json.dumps({"version": 1, "models": rows}, indent=1, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: Path, on_notice=lambda text: None) -> PerfModel:
        """The cached models; a torn or foreign cache file is reported (`on_notice`) and ignored, never fatal."""
        model = cls()
        if not path.exists():
            return model
        try:
            for row in json.loads(path.read_text()).get("models", []):
                stats = Stats(int(row["count"]), float(row["mean_s"]), float(row["m2"]), True,
                              int(row.get("outliers", 0)), float(row.get("outlier_mean_s", 0.0)),
                              float(row.get("outlier_m2", 0.0)))
                figures = (stats.mean, stats.m2, stats.outlier_mean, stats.outlier_m2)
                if min(stats.count, stats.outliers) < 0 or not all(map(math.isfinite, figures)) or \
                        min(figures) < 0:  # a time or a variance below 0 is no measurement
                    raise ValueError(f"a model of part {row['part']} is not a time")
                model.stats[(int(row["part"]), str(row["kind"]), int(row["batch"]))] = stats
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            on_notice(f"performance-model cache '{path}' is unreadable ({exc.__class__.__name__}): ignored, the "
                      "models are calibrated afresh")
            return cls()
        return model


def cache_file(host: str, model_sha256: str, plan_sha256: str, ort_version: str, inputs: str = "") -> Path:
    """Where the models of one (host, model or plan, ONNX Runtime version, inputs) live between runs: `inputs` is
    '' for random ones, else InputData.cache_key() (a model whose time follows its data learns apart per data)."""
    from ..cachedir import cache_dir

    key = "-".join(x for x in (host or "host", model_sha256[:16], plan_sha256[:8], f"ort{ort_version}",
                               f"in{inputs}" if inputs else "") if x)
    return cache_dir() / "perfmodels" / f"{key}.json"
