"""The cost table (`costs.csv`): one row per (original node, device, batch size). Columns named once here.

`mean_us`, `median_us` and `std_us` are in the clock that `timing` names: `gpu` (the GPU's own time, CUPTI),
`cpu` (host time of a kernel run on the CPU) or `host-launch` (host time of a CUDA kernel: its launch, not
its work; see rows.py). `host_us` is ORT's host time in every case. Files from before these two columns
hold CPU times, or launch times where their device is cuda.

A sidecar `<name>.meta.json` keeps what a row cannot: the model's sha256, the optimisation level, the
timing source, the end-to-end (and GPU) time of each batch size and the profiling overhead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import UserError, json_text
from ..inputfile import MAX_JSON_BYTES, checked_input
from ..kinds import key_on_gpu
from ..outputfile import write_text_atomic
from .steadiness import STALLED

# The contract of DESIGN.md section 5, then our additions.
COLUMNS = ["node", "op_type", "device", "batch_size", "runs", "mean_us", "median_us", "std_us", "output_bytes",
           "how", "share", "kernels", "host_us", "timing"]
REQUIRED = COLUMNS[:9]
SCHEMA_VERSION = 1


def meta_path(costs_path: str | Path) -> Path:
    path = Path(costs_path)
    return path.with_name(path.stem + ".meta.json")


def write_costs(path: str | Path, rows: list[dict], meta: dict) -> None:
    path = Path(path)
    write_text_atomic(path, pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))
    write_text_atomic(meta_path(path), json_text({"schema_version": SCHEMA_VERSION, **meta}))


def read_costs(path: str | Path) -> pd.DataFrame:
    path = checked_input(path, "costs file", f"make one with 'staronnx profile MODEL -o {path}'")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for garbage
        raise UserError(f"'{path}' is not a costs CSV ({type(exc).__name__}): "
                        "make one with 'staronnx profile MODEL -o costs.csv'") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(f"'{path}' is not a staronnx costs file (missing columns {', '.join(missing)}): "
                        "make one with 'staronnx profile MODEL -o costs.csv'")
    if frame.empty:  # its header alone: a profile cut short before its first row
        raise UserError(f"'{path}' has no rows (a profile cut short?): profile again with 'staronnx profile MODEL "
                        f"-o {path}'")
    for column in [c for c in NUMERIC if c in frame.columns]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise UserError(f"'{path}' line {row + 2}: {column} is '{frame[column].iloc[row]}', not a number (the "
                            "file is cut short or was edited): profile again with 'staronnx profile'")
        # negative or beyond any real one: no time or size is (1e300 us overflowed METIS's integer weights)
        wrong = ~values.between(0, LARGEST[column]) & ~((values == UNKNOWN) & (column == "output_bytes"))
        if wrong.any():
            row = int(wrong.idxmax())
            raise UserError(f"'{path}' line {row + 2}: {column} is {values.iloc[row]:g}, not a value from 0 to "
                            f"{LARGEST[column]:g} (the file was edited): profile again with 'staronnx profile'")
        frame[column] = values
    fix = "the file was edited: profile again with 'staronnx profile'"
    def whole(column: pd.Series) -> pd.Series:
        return (column >= 1) & (column % 1 == 0)

    small = ~whole(frame.batch_size) | ~whole(frame.runs)
    if small.any():
        row = int(small.to_numpy().nonzero()[0][0])
        what = "batch_size" if not whole(frame.batch_size).iloc[row] else "runs"
        raise UserError(f"'{path}' line {row + 2}: {what} {frame[what].iloc[row]:g} is not a whole number from 1 "
                        f"({fix})")
    for column in ("node", "device"):  # a blank cell is read as NaN, a float
        blank = ~frame[column].map(lambda v: isinstance(v, str) and bool(v.strip()))
        if blank.any():
            row = int(blank.to_numpy().nonzero()[0][0])
            raise UserError(f"'{path}' line {row + 2}: {column} is empty ({fix})")
    twice = frame.duplicated(["node", "device", "batch_size"])
    if twice.any():  # a node's time counted twice would double its share
        row = int(twice.to_numpy().nonzero()[0][0])
        raise UserError(f"'{path}' line {row + 2}: node {frame.node.iloc[row]!r} at batch "
                        f"{frame.batch_size.iloc[row]:g} on {frame.device.iloc[row]} is there twice ({fix})")
    _check_timing(path, frame)
    return frame


CLOCK_WORDS = {"gpu": "GPU time (CUPTI)", "cpu": "CPU time", "host-launch": "host launch time, not GPU time"}


def main_timing(timings) -> str:
    """The clock of a set of rows as a whole: any launch time taints it, else GPU time, else CPU time."""
    return next((t for t in ("host-launch", "gpu") if t in set(timings)), "cpu")


UNKNOWN = -1  # output_bytes of a node whose output size neither shape inference nor ORT's profile gave
NUMERIC = ["batch_size", "runs", "mean_us", "median_us", "std_us", "output_bytes", "host_us"]
HOUR_US = 3.6e9
LARGEST = {"mean_us": HOUR_US, "median_us": HOUR_US, "std_us": HOUR_US, "host_us": HOUR_US,  # a node's run: an hour
           "output_bytes": 2.0**50, "batch_size": 2.0**31, "runs": 2.0**31}
TIMINGS = {"gpu": "cuda", "host-launch": "cuda", "cpu": None}  # timing -> the device kind it needs (None: any)


def _check_timing(path: Path, frame: pd.DataFrame) -> None:
    if "timing" not in frame.columns:
        return
    known = frame.timing.isin(list(TIMINGS))
    if not known.all():
        row = int((~known).idxmax())
        value = frame.timing.iloc[row]
        raise UserError(f"'{path}' line {row + 2}: timing '{'' if pd.isna(value) else value}' is not one of "
                        f"{', '.join(TIMINGS)} (the file is cut short or was edited): profile again with "
                        "'staronnx profile'")
    on_cpu = ~frame.device.astype(str).map(key_on_gpu) & frame.timing.isin(["gpu", "host-launch"])
    if on_cpu.any():
        row = int(on_cpu.idxmax())
        raise UserError(f"'{path}' line {row + 2}: timing '{frame.timing.iloc[row]}' on device "
                        f"{frame.device.iloc[row]}: GPU timings belong to cuda devices; profile again with "
                        "'staronnx profile'")


def read_meta(costs_path: str | Path) -> dict:
    path = meta_path(costs_path)
    if not path.exists():
        return {}
    try:
        meta = json.loads(checked_input(path, "costs sidecar", "profile again with 'staronnx profile'",
                                        MAX_JSON_BYTES).read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"'{path}' is not valid JSON (cut short or edited): profile again with 'staronnx profile'") \
            from None
    batches = meta.get("batches") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not (batches is None or isinstance(batches, dict) and all(
            str(n).isdigit() and isinstance(figures, dict) for n, figures in batches.items())):
        raise UserError(f"'{path}' is not a costs sidecar written by staronnx (edited?): profile again with "
                        "'staronnx profile'")
    return meta


def timing_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's timing; rows written before the column existed: cpu, or host-launch on a cuda device."""
    legacy = frame["device"].astype(str).map(key_on_gpu).map({True: "host-launch", False: "cpu"})
    if "timing" not in frame.columns:
        return legacy
    return frame["timing"].fillna(legacy)


def node_cost(rows: pd.DataFrame) -> pd.Series:
    """A node's time per run: its mean, or its median where a stalled run moved the mean (beyond STALLED x the
    median: one 900 us spike among 5 us runs cut 32 % where 10 % was asked; profile warns of it). What split cuts
    on and what the simulator's [[speeds]] scale."""
    stalled = rows.mean_us > STALLED * rows.median_us
    return rows.mean_us.where(~stalled, rows.median_us)
