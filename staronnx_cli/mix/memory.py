"""`--memory-limit cuda:0=8GiB,cpu=2GiB`: what each worker may hold, and whether the mix fits before any point.

A worker holds one session per (model, part): its weights (the part file's size) and, at most, every tensor its
nodes write at the model's batch size (ONNX Runtime's planner reuses some: a bound, not a forecast). GPU workers
get `gpu_mem_limit` on each session's arena (their share of the budget); CPU sessions have no such cap in ONNX
Runtime, so there the budget is checked, not enforced.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from ..kinds import CPU
from ..sweep.checks import activation_bytes_per_sample

UNITS = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_size(text: str, where: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise UserError(f"--memory-limit {where}: '{text}' is not a size: write e.g. 8GiB, 512MiB or 2GB")
    size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size <= 0:
        raise UserError(f"--memory-limit {where}: a budget must be positive, e.g. 8GiB")
    return size


def parse_memory_limits(text: str | None, workers) -> dict[str, int]:
    """Worker name -> bytes. Keys: cuda:I (shared by the workers on GPU I), cpu (each CPU worker), or a worker's
    name (cpu0, cuda0.1)."""
    if not text:
        return {}
    limits: dict[str, int] = {}
    given: set[str] = set()
    for item in [i.strip() for i in text.split(",") if i.strip()]:
        key, sep, size = item.partition("=")
        if not sep:
            raise UserError(f"--memory-limit '{item}': write WORKER=SIZE, e.g. cuda:0=8GiB or cpu=2GiB")
        key = key.strip()
        if key in given:  # cpu=1GiB,cpu=2GiB: the last one won, unsaid
            raise UserError(f"--memory-limit {key} is given twice: give each worker (or cpu, cuda:ID) one budget")
        given.add(key)
        budget = parse_size(size, key)
        gpu = re.fullmatch(r"cuda:(\d+)", key)
        if gpu:
            mine = [w for w in workers if w.on_gpu and w.device_id == int(gpu.group(1))]
            chosen = {w.name: budget // max(len(mine), 1) for w in mine}
        elif key == CPU:
            chosen = {w.name: budget for w in workers if not w.on_gpu}
        else:
            chosen = {w.name: budget for w in workers if w.name == key}
        if not chosen:
            names = ", ".join(w.name for w in workers)
            raise UserError(f"--memory-limit {key}: no such worker here (the workers are {names}): use cuda:ID, cpu "
                            "or a worker's name")
        limits.update(chosen)
    return limits


def session_bytes(part_files: list[Path], batch_of_part: list[int]) -> int:
    """What one worker's sessions may hold: weights plus every tensor written, at each part's batch size."""
    return sum(f.stat().st_size + activation_bytes_per_sample(f) * n for f, n in zip(part_files, batch_of_part))


def check_memory_limits(limits: dict[str, int], target, largest: list[int]) -> None:
    """Refuse, with the figures, a mix whose sessions exceed a worker's budget at the largest batch sizes."""
    if not limits:
        return
    members = target.members or []
    batch_of_part = [largest[m] for m, member in enumerate(members) for _ in member.target.part_files] or \
        [largest[0]] * len(target.part_files)
    needed = session_bytes(target.part_files, batch_of_part)
    for worker, budget in limits.items():
        if needed > budget:
            per_model = ", ".join(
                f"{m.name} {session_bytes(m.target.part_files, [largest[i]] * len(m.target.part_files)) / 2**20:.1f} "
                "MiB" for i, m in enumerate(members)) or f"{needed / 2**20:.1f} MiB"
            raise UserError(f"--memory-limit: worker {worker} would hold up to {needed / 2**20:.1f} MiB of sessions "
                            f"({per_model}: weights plus every tensor at the largest batch sizes), more than its "
                            f"{budget / 2**20:.1f} MiB: raise the budget, lower the batch sizes or serve fewer "
                            "models")
