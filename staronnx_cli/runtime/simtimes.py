"""Task times for the simulated engine: a platform's measured rows, or its speeds applied to profile costs.

`PartTimes.mean(part, kind, batch)` is what a task takes on a worker of that kind (seconds), before the
platform's per-task overhead and transfers, which the simulated executor adds.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import modelio
from ..errors import UserError
from ..inputfile import checked_input
from ..profile.costs import node_cost
from .platform import Platform, Speed, interpolate


class PartTimes:
    def __init__(self, table: dict[tuple[int, str], dict[int, tuple[float, float]]]):
        self.table = table  # (part, kind) -> {batch: (mean_s, std_s)}
        self._cache: dict[tuple[int, str, int], tuple[float, float]] = {}

    def _lookup(self, part: int, kind: str, batch: int) -> tuple[float, float]:
        key = (part, kind, batch)
        if key not in self._cache:
            points = self.table[(part, kind)]
            mean = interpolate({b: m for b, (m, _) in points.items()}, batch)
            std = interpolate({b: s for b, (_, s) in points.items()}, batch)
            self._cache[key] = (mean, std)
        return self._cache[key]

    def mean(self, part: int, kind: str, batch: int) -> float:
        hit = self._cache.get((part, kind, batch))
        return hit[0] if hit is not None else self._lookup(part, kind, batch)[0]

    def std(self, part: int, kind: str, batch: int) -> float:
        return self._lookup(part, kind, batch)[1]

    def kinds(self) -> set[str]:
        return {kind for _, kind in self.table}


def scaled_costs(costs: pd.DataFrame, speed: Speed) -> pd.DataFrame:
    """A profile's per-node rows as the speed's device would run them: x factor (or its op type's), + node_us."""
    if speed.device:
        costs = costs[costs.device == speed.device]
    factor = costs.op_type.map(lambda op: speed.op_factors.get(op, speed.factor)).astype(float)
    cost = node_cost(costs) if "median_us" in costs else costs.mean_us  # hand-written costs may lack medians
    return costs.assign(mean_us=cost * factor + speed.node_us, std_us=costs.std_us * factor)


def read_speed_costs(speed: Speed, model_name: str, in_mix: bool = False) -> pd.DataFrame:
    """A [[speeds]] entry's costs file (`{model}` replaced by the model's name: a mix entry's name `in_mix`, which
    the profile command cannot take: it is told to name that entry's model)."""
    path = Path(str(speed.costs).replace("{model}", model_name))  # opened as written: '..' after a link is the link's
    profile = (f"'staronnx profile {'MODEL' if in_mix or not model_name else model_name}"
               + (f" --device {speed.device}" if speed.device else "") + f" -o {os.path.normpath(path)}'"
               + (f" (MODEL: the model of the mix's entry '{model_name}')" if in_mix else ""))  # shown without 'a/../'
    path = checked_input(path, f"platform: [[speeds]] kind {speed.kind}: costs file",
                         f"profile the model with {profile}")
    try:
        costs = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise UserError(f"platform: '{path}' is not a costs.csv of staronnx profile") from None
    missing = {"node", "op_type", "device", "batch_size", "mean_us", "std_us"} - set(costs.columns)
    if missing:
        raise UserError(f"platform: '{path}' lacks {', '.join(sorted(missing))}: give a costs.csv of "
                        "staronnx profile")
    if costs.empty:
        raise UserError(f"platform: '{path}' has no rows (a profile cut short?): profile again with {profile}")
    for column in ("mean_us", "std_us", "batch_size"):  # a negative or NaN time gave a latency of -999,999.8 ms
        values = pd.to_numeric(costs[column], errors="coerce")
        bad = ~(np.isfinite(values) & (values >= (1 if column == "batch_size" else 0)))
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(f"platform: '{path}' row {row + 2}: {column} = {costs[column].iloc[row]!r} is not a "
                            f"{'batch size' if column == 'batch_size' else 'time in us'} (finite, "
                            f"{'at least 1' if column == 'batch_size' else 'not negative'}): profile the model again")
    if speed.device and not (costs.device == speed.device).any():
        raise UserError(f"platform: '{path}' has no rows of device {speed.device} (it has "
                        f"{', '.join(map(str, dict.fromkeys(costs.device)))}): profile on that device with {profile}")
    return costs


def _from_speed(speed: Speed, part_files: list[Path], model_name: str,
                in_mix: bool = False) -> dict[int, dict[int, tuple[float, float]]]:
    costs = scaled_costs(read_speed_costs(speed, model_name, in_mix), speed)
    out: dict[int, dict[int, tuple[float, float]]] = {}
    for part, file in enumerate(part_files):
        nodes = [n.name for n in modelio.load_model(file, with_weights=False).graph.node]
        mine = costs[costs.node.isin(nodes)]
        absent = set(nodes) - set(mine.node)
        if absent:
            raise UserError(f"platform: the costs of {speed.kind} have no row for node {sorted(absent)[0]} of part "
                            f"{part}: profile the model this plan was split from")
        out[part] = {int(batch): (rows.mean_us.sum() / 1e6, float((rows.std_us ** 2).sum()) ** 0.5 / 1e6)
                     for batch, rows in mine.groupby("batch_size")}
    return out


def part_times(platform: Platform, part_files: list[Path], model_name: str = "", in_mix: bool = False) -> PartTimes:
    """Every (part, kind) of the platform's workers resolved, or one clear error naming what is missing."""
    table: dict[tuple[int, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    parts = len(part_files)
    for row in platform.times:
        if row.part >= parts:
            raise UserError(f"platform: [[times]] part {row.part} does not exist: the target has {parts} part(s)")
        table[(row.part, row.kind)][row.batch] = (row.mean_ms / 1e3, row.std_ms / 1e3)
    for speed in platform.speeds:
        for part, per_batch in _from_speed(speed, part_files, model_name, in_mix).items():
            for batch, value in per_batch.items():
                table[(part, speed.kind)].setdefault(batch, value)
    for group in platform.workers:
        for part in range(parts):
            if not table.get((part, group.kind_key)):
                raise UserError(f"platform: no time for part {part} on {group.kind_key} workers: add [[times]] "
                                f"part = {part}, kind = \"{group.kind_key}\" (or [[speeds]] for that kind)")
    return PartTimes(dict(table))
