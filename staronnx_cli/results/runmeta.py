"""run.json as a typed object, written and read by the same class: one place says which keys a run has, of what
type, which are written only once recorded, and what older runs without them mean, instead of a dict built in one
module and `.get(key, default)` wherever a reader needs one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

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
    input_data: str = "random"  # --input-data in words: random, zeros, or a file and its sha256's head
    batches: int | None = None
    warmup: int | None = None
    cuda_graphs: bool = True
    judging: int = 1  # the rules a point is measured and judged by (sweep/point.py JUDGING); older runs: 1
    # Written only once recorded (RECORDED): by the engine, during the sweep, or by a mix.
    perfmodel: str = ""  # real engine: the performance-model file
    platform_name: str = ""  # sim engine: the simulated machine
    calibration: list = field(default_factory=list)  # what each worker kind ran alone before the points
    machine_load: list = field(default_factory=list)  # the machine's load at the start and over the sweep
    auto_rates: list | None = None  # --rate auto: the grid, reused by --resume
    auto_capacity_qps: dict | None = None  # --rate auto: each N's measured capacity
    cuda_graph_parts: list = field(default_factory=list)
    transfer_measured: dict = field(default_factory=dict)  # host->device figures per GPU worker
    transfer: dict | None = None  # the link dmda predicted with
    mix: dict | None = None  # sweep --mix: its models as read from the mix file
    scales: list | None = None
    vary: str | None = None
    memory_limits: dict | None = None
    extra: dict = field(default_factory=dict)  # everything else an engine recorded (calibrate, platform, ...)

    def plan_words(self) -> str:
        """'2 parts, 10% of the compute offloaded' (a chain), '4 parts in parallel branches' (a branch plan: nothing
        is offloaded there), or '' for a whole model."""
        parts = int(self.parts)
        if parts <= 1:
            return ""
        if self.split_method == "branches":
            return f"{parts} parts in parallel branches"
        share = self.offload_fraction
        return f"{parts} parts" + (f", {float(share):.0%} of the compute offloaded" if share else "")

    @classmethod
    def from_json(cls, data: dict, path: Path) -> RunMeta:
        values = {k: v for k, v in data.items() if k in FIELDS and v is not None}
        try:
            meta = cls(**values, extra={k: v for k, v in data.items() if k not in FIELDS})
            _check_values(meta, values)
            wrong = [f.name for f in fields(cls) if f.name in values and isinstance(DEFAULTS.get(f.name), (list, dict))
                     and not isinstance(values[f.name], type(DEFAULTS[f.name]))]
            if wrong:
                raise TypeError(f"'{wrong[0]}' is not a {type(DEFAULTS[wrong[0]]).__name__}")
            for name in ("calibration", "machine_load"):  # lists of records
                if not all(isinstance(item, dict) for item in getattr(meta, name)):
                    raise TypeError(f"'{name}' holds an item that is not a record")
        except (TypeError, ValueError) as exc:
            raise UserError(f"'{path}' is not a staronnx run.json ({exc}): sweep again into a new -o") from None
        return meta

    def to_json(self) -> dict:
        """What run.json holds: every sweep key, the recorded ones once set, then what the engine added."""
        written = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in written.items() if k not in RECORDED or v not in (None, "", [], {})},
                **self.extra}

    def with_recorded(self, values: dict[str, Any]) -> RunMeta:
        """These keys set: a known one in its field, any other kept as the engine wrote it."""
        known = {k: v for k, v in values.items() if k in FIELDS}
        return replace(self, **known, extra={**self.extra, **{k: v for k, v in values.items() if k not in FIELDS}})

    def get(self, key: str, default=None):
        """Any recorded key by name (for generic tables such as the report's)."""
        if key in self.extra:
            return self.extra[key]
        return getattr(self, key, default) if key in FIELDS else default


FIELDS = frozenset(f.name for f in fields(RunMeta)) - {"extra"}
RECORDED = frozenset({"perfmodel", "platform_name", "calibration", "machine_load", "auto_rates", "auto_capacity_qps",
                      "cuda_graph_parts", "transfer_measured", "transfer", "mix", "scales", "vary", "memory_limits"})
DEFAULTS = {f.name: getattr(RunMeta(schema_version=0), f.name) for f in fields(RunMeta)}


TEXT = ("command", "staronnx", "onnxruntime", "python", "cpu", "host", "target", "model_name", "model_sha256",
        "plan_sha256", "split_method", "workers", "policy", "engine", "system", "arrival")
WHOLE = ("parts", "seed", "batches", "warmup", "judging", "cores")


def _check_values(meta: RunMeta, given: dict) -> None:
    """What readers print or compute with: text that is text, counts that are whole numbers in range, an offload
    a fraction, an engine this staronnx knows (a TypeError or ValueError names the first that is not)."""
    for name in TEXT:
        if name in given and not isinstance(getattr(meta, name), str):
            raise TypeError(f"'{name}' is {getattr(meta, name)!r}, not text")
    for name in WHOLE:
        value = getattr(meta, name)
        if name in given and (isinstance(value, bool) or not isinstance(value, int) or value < (
                1 if name == "parts" else 0)):
            raise ValueError(f"'{name}' is {value!r}, not a whole number{' from 1' if name == 'parts' else ''}")
    fraction = meta.offload_fraction
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 <= fraction < 1):
        raise ValueError(f"'offload_fraction' is {fraction!r}, not a fraction from 0 to below 1")
    if meta.engine not in ("real", "sim"):
        raise ValueError(f"'engine' is {meta.engine!r}, not real or sim")
