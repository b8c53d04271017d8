"""run.json read back as a typed object: one place says which keys a run has, of what type, and what older
runs without them mean, instead of `.get(key, default)` wherever a reader needs one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class RunMeta:
    schema_version: int
    command: str = ""
    staronnx: str = ""
    onnxruntime: str = "?"
    python: str = ""
    cpu: str = "?"
    cores: int | None = None
    gpu: str | None = None  # the CUDA device, or None
    host: str = ""
    target: str = ""
    model_name: str = ""  # older runs: none (the reader falls back to the target's name)
    model_sha256: str = ""
    plan_sha256: str = ""
    parts: int = 1
    offload_fraction: float | None = None  # of the plan (older runs: not recorded)
    split_method: str = ""
    workers: str = ""
    worker_cores: dict = field(default_factory=dict)  # worker name -> its cores
    policy: str = ""
    engine: str = "real"
    system: str = "staronnx"
    arrival: str = "fixed"
    max_queue_delay_ms: float | None = None
    seed: int = 0
    batches: int | None = None
    warmup: int | None = None
    cuda_graphs: bool = True
    perfmodel: str = ""  # real engine: the performance-model file
    platform_name: str = ""  # sim engine: the simulated machine
    extra: dict = field(default_factory=dict)  # everything else an engine recorded (calibration, platform, ...)

    @classmethod
    def from_json(cls, data: dict, path: Path) -> RunMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        try:
            meta = cls(**values, extra={k: v for k, v in data.items() if k not in known})
            for name, kind in (("parts", int), ("offload_fraction", float), ("schema_version", int)):
                if getattr(meta, name) is not None:
                    kind(getattr(meta, name))
        except (TypeError, ValueError) as exc:
            raise UserError(f"'{path}' is not a staronnx run.json ({exc}): sweep again into a new -o") from None
        return meta

    def get(self, key: str, default=None):
        """Any recorded key by name (for generic tables such as the report's)."""
        if key in self.extra:
            return self.extra[key]
        return getattr(self, key, default) if key != "extra" else default
