"""Reading a run directory for plots and reports: only the result files, validated, never the runtime."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..errors import UserError, first_line
from ..inputfile import DANGLING, dangling
from ..kinds import layout_key
from ..zoo.names import display_name
from .rundir import point_key
from .runmeta import RunMeta
from .schema import (
    BATCH_COLUMNS_REQUIRED,
    FALSE,
    POINT_COLUMNS_REQUIRED,
    RUN_SCHEMA_VERSION,
    TRUE,
    complete_text,
    flags,
    read_run_meta,
)


@dataclass
class Run:
    path: Path
    meta: RunMeta
    points: pd.DataFrame

    @property
    def label(self) -> str:
        """How the run is named in legends: the system, then what distinguishes runs of one system."""
        meta = self.meta
        parts = [meta.system, meta.workers]
        if meta.system == "staronnx":
            parts.append(meta.policy)
        if meta.mix:  # its parts are its models'
            parts.append(f"mix of {len(meta.mix.get('models') or [])} models")
        elif int(meta.parts) > 1:
            parts.append(f"{meta.parts} parts")
        if meta.system == "triton":
            parts.append("(ONNX Runtime in its Python backend)")
        if meta.engine != "real":
            parts.append(f"({meta.engine})")
        return " ".join(p for p in parts if p)

    @property
    def model(self) -> str:
        """The model a run measured: the source model's sha256 (a plan records the source's)."""
        return self.meta.model_sha256

    @property
    def model_name(self) -> str:
        """As the user named it (zoo name or file stem); older runs: from the target path."""
        if self.meta.model_name:
            return self.meta.model_name
        target = Path(self.meta.target or "?")
        return display_name(target) if target.suffix == ".onnx" else target.name

    @cached_property
    def batches(self) -> pd.DataFrame:
        file = self.path / "batches.csv"
        if not file.exists():
            raise UserError(f"run '{self.path}' has no batches.csv: a timeline needs the per-batch records")
        return read_batches(file)


def _read_csv(file: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(complete_text(file)))  # a row cut by a crash is not a finished point
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"'{file}' is not a readable CSV ({first_line(exc)}): rerun the sweep") from None


def _require(frame: pd.DataFrame, columns: list[str], file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"'{file}' lacks the column(s) {', '.join(missing)}: is it a staronnx result file? "
                        "rerun the sweep")


def versioned_meta(path: Path) -> dict:
    """A run's run.json as data, its schema version one this staronnx reads (plot, report and platform from-run
    alike: an edited version was refused by one and read by the other)."""
    meta = read_run_meta(path / "run.json")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"run '{path}': its run.json's schema_version {version!r} is not a whole number (edited?): "
                        "sweep again into a new -o")
    if version > RUN_SCHEMA_VERSION:
        raise UserError(f"run '{path}' has schema version {version}, newer than this staronnx reads "
                        f"({RUN_SCHEMA_VERSION}): upgrade staronnx")
    return meta


def read_run(path: Path) -> Run:
    """A run directory (run.json + points.csv), checked: one clear error for anything else."""
    path = Path(path)
    if dangling(path):
        raise UserError(f"'{path}' is a symbolic link that {DANGLING}: give the run directory a sweep wrote")
    if not path.is_dir():
        raise UserError(f"'{path}' is not a directory: give the run directory a sweep wrote (-o of staronnx sweep)")
    meta_file, points_file = path / "run.json", path / "points.csv"
    if not meta_file.exists() or not points_file.exists():
        plan = (path / "plan.json").exists()  # a split's plan: plot draws it as its parts
        raise UserError(f"'{path}' is not a run directory (it needs run.json and points.csv, written by "
                        "staronnx sweep)" + (f": it is a plan; draw it with 'staronnx plot {path} --kind parts'"
                                             if plan else ""))
    meta = versioned_meta(path)
    return Run(path, RunMeta.from_json(meta, meta_file), read_points(points_file))


FIX = "fix or remove that row, or sweep again"
TIMES = ("mean_max_latency_ms", "std_max_latency_ms", "ideal_latency_ms", "service_ms")
LAYOUT = ("system", "engine", "policy", "workers")  # one run, one layout: a row of another is a merged file


def read_points(points_file: Path) -> pd.DataFrame:
    """points.csv, every row checked (report, plot, trace and --resume alike): what names a point, its counts and
    times are numbers in range, its flags True or False, each point once, and one layout in the whole file."""
    points = _read_csv(points_file)
    _require(points, POINT_COLUMNS_REQUIRED, points_file)
    for column, whole, what in (("batch_size", True, "a whole positive number"), ("rate_qps", False,
                                 "a finite positive number"), ("batches", True, "a whole number, 0 or more")):
        values = pd.to_numeric(points[column], errors="coerce")
        floor = values >= 0 if column == "batches" else values > 0
        bad = values.isna() | ~(floor & (values < math.inf)) | ((values % 1 != 0) if whole else False)
        _refuse_rows(points, bad, points_file, column, f"is not {what}")
        points[column] = values.astype(int) if whole else values.astype(float)
    written = points["congested"].astype(str).str.strip().str.lower()
    _refuse_rows(points, ~written.isin(TRUE + FALSE), points_file, "congested", "is not True or False")
    points["congested"] = flags(points["congested"])
    for column in (c for c in TIMES if c in points):
        values = pd.to_numeric(points[column], errors="coerce")
        given = points[column].notna() & (points[column].astype(str).str.strip() != "")
        _refuse_rows(points, given & ~((values >= 0) & (values < math.inf)), points_file, column, "is not a time")
        if column == "mean_max_latency_ms":  # a measured point that is not congested has its latency
            _refuse_rows(points, ~points["congested"] & (points["batches"] > 0) & values.isna(), points_file, column,
                         "has no value on a measured point that is not congested")
        points[column] = values
    for column in (c for c in LAYOUT if c in points and len(points)):
        spelt = points[column].astype(str).map(layout_key if column == "workers" else str)  # cpu:1 is cpu:1x1
        _refuse_rows(points, spelt != spelt.iloc[0], points_file, column,
                     f"differs from line 2's {_shown(points[column].iloc[0])}",
                     "one run has one layout: merged or edited?")
    _refuse_repeated_points(points, points_file)
    return points


def read_batches(batches_file: Path) -> pd.DataFrame:
    """batches.csv, every row checked (trace, timeline, platform from-run alike): what names its point and its
    index are numbers, its arrival and release times finite, its end a time where written (none, or infinite:
    unfinished when the point stopped), and the task cells there (a batch that ran nothing leaves them empty)."""
    frame = _read_csv(batches_file)
    _require(frame, [*BATCH_COLUMNS_REQUIRED, "placement", "task_times"], batches_file)
    for column, whole, floor in (("batch_size", True, 1), ("rate_qps", False, 0), ("batch_index", True, 0)):
        values = pd.to_numeric(frame[column], errors="coerce")
        low = values >= floor if whole else values > 0
        bad = values.isna() | ~(low & (values < math.inf)) | ((values % 1 != 0) if whole else False)
        _refuse_rows(frame, bad, batches_file, column, f"is not a whole number from {floor}" if whole else
                     "is not a finite positive number")
        frame[column] = values.astype(int) if whole else values.astype(float)
    for column in ("first_arrival_s", "scheduled_release_s", "actual_release_s", "end_s", "first_query_latency_ms"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if column in ("end_s", "first_query_latency_ms"):  # empty or infinite: unfinished when the point stopped
            given = frame[column].notna() & (frame[column].astype(str).str.strip() != "")
            _refuse_rows(frame, given & values.isna(), batches_file, column, "is not a time")
        else:
            _refuse_rows(frame, ~(values.abs() < math.inf), batches_file, column, "is not a finite time")
        frame[column] = values
    for column in ("placement", "task_times", "transfer_times", "error"):  # text: an empty cell is "", not NaN
        if column in frame:
            frame[column] = frame[column].fillna("").astype(str)
    ran = (frame["end_s"].abs() < math.inf) & (frame.get("error", pd.Series("", index=frame.index)) == "")
    for column in ("placement", "task_times"):  # a batch that finished without an error ran its tasks somewhere
        _refuse_rows(frame, ran & (frame[column].str.strip() == ""), batches_file, column,
                     "is missing on a batch that finished")
    return frame


def _refuse_rows(points: pd.DataFrame, bad: pd.Series, points_file: Path, column: str, what: str,
                 how: str = "edited?") -> None:
    """One line naming the first bad row, its column and value, when any row is bad (`how` it likely came so)."""
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(f"'{points_file}' line {row + 2}: {column} {_shown(points[column].iloc[row])} {what} "
                        f"({how}): {FIX}")


def _shown(value) -> str:
    """A cell as it reads in the file (numpy's scalars as plain numbers; an empty cell said so)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        return "(empty)"
    return repr(value.item() if hasattr(value, "item") else value)


def _refuse_repeated_points(points: pd.DataFrame, points_file: Path) -> None:
    """Two rows of one point (a pasted or merged file) would be drawn and reported as two measurements."""
    rows = points.astype(object).where(points.notna(), "").to_dict("records")
    first: dict[tuple, int] = {}
    for line, row in enumerate(rows, start=2):
        key = point_key({k: str(v) for k, v in row.items()})
        if key in first:
            raise UserError(f"'{points_file}' lines {first[key]} and {line} are the same point (batch size "
                            f"{key[0]} at {key[1]:g} q/s{f', {key[2]}' if key[2] else ''}; edited or merged?): "
                            "remove one of them, or sweep again")
        first[key] = line


def read_runs(paths: list[Path]) -> list[Run]:
    if not paths:
        raise UserError("no run directory given: name at least one directory written by staronnx sweep")
    runs = [read_run(p) for p in paths]  # each checked first: a loop of links is said, not resolved
    seen: dict[Path, Path] = {}
    for p in paths:  # the same run twice would be reported, and drawn, as two
        if Path(p).resolve() in seen:
            raise UserError(f"'{p}' is given twice (as '{seen[Path(p).resolve()]}' too): name each run once")
        seen[Path(p).resolve()] = Path(p)
    return runs


def legend_labels(runs: list[Run]) -> list[str]:
    """Each run's label, with its directory name added where two runs would read the same."""
    several = len({r.model_name for r in runs}) > 1  # runs of different models: each label names its model
    labels = [f"{r.model_name}: {r.label}" if several else r.label for r in runs]
    return [f"{label} ({run.path.name})" if labels.count(label) > 1 else label for label, run in zip(labels, runs)]
