"""What a sweep is asked to do: one plain object, built by the CLI (or a script), checked by checks.py."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from ..inputdata import RANDOM, InputData


@dataclass
class SweepSettings:
    """What one sweep measures and how (a mix's sweep holds one too: mix/run.MixSettings). Everything after the
    output is named: given by position, runtime_bench's K went to `auto_rates` and its 5 warm-up batches to
    `batches` when a field was added between them."""

    target: Path  # a model file or a plan directory
    output: Path
    _: KW_ONLY
    workers: str = "cpu:1x2"
    policy: str = "dmda"
    batch_sizes: tuple[int, ...] = (1, 2, 4)
    rates: tuple[float, ...] = (10.0,)
    auto_rates: bool = False  # --rate auto: the grid is fitted to each N's measured capacity (sweep/autogrid.py)
    batches: int = 50
    warmup: int = 5
    arrival: str = "fixed"
    max_queue_delay_ms: float | None = None
    system: str = "staronnx"
    seed: int = 0
    input_data: InputData = RANDOM  # what the model is fed (--input-data); a mix: each model's own, in its file
    max_memory_gib: float | None = None  # refuse a sweep needing more (default: half this machine's memory)
    max_hours: float = 24.0  # refuse a real sweep whose arrivals alone last longer (a typo in --batch or --rate)
    calibrate: bool = False  # start the performance models afresh instead of reusing the cached ones
    cuda_graphs: bool = True  # GPU workers run parts with static shapes as CUDA graphs
    engine: str = "real"  # or "sim": the same scheduler on a virtual clock
    platform: Path | None = None  # sim: the machine (default: this host's cached performance models)
    sim_noise: bool = False  # sim: draw execution times from the models' std (seeded)
    trust_platform: bool = False  # sim: the platform's [[times]] of the same split made again elsewhere
    triton_port: int = 0  # --system triton: gRPC port (HTTP +1, metrics +2); 0 = free ports the kernel picks
    resume: bool = False
    force: bool = False
    command: str = ""
    model_name: str = ""  # as the user named it (zoo name, file stem), for titles
