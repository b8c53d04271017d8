"""One writer of a run directory: run.json read, changed and written whole (through a temporary file), result rows
appended crash-safe, a torn end repaired before a resume, a stale start begun again as a whole. `sweep` and
`sweep --mix` write through it; nothing else writes a run's own files."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..errors import UserError, json_text
from ..outputfile import write_text_atomic
from .runmeta import RunMeta
from .schema import (
    BATCH_COLUMNS,
    POINT_COLUMNS,
    RUN_FILES,
    append_rows,
    complete_text,
    cut_partial_line,
    flags,
    read_run_meta,
    unsettled,
)


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self.run_json, self.points, self.batches = (path / name for name in RUN_FILES)

    # -- run.json -------------------------------------------------------------------------------------------------
    def read_meta(self) -> RunMeta:
        return RunMeta.from_json(read_run_meta(self.run_json), self.run_json)

    def write_meta(self, meta: RunMeta) -> None:
        """Whole or not at all; a file system that refuses (read-only, full) is one line, the points kept."""
        write_text_atomic(self.run_json, json_text(meta.to_json()), "free space or fix permissions, then continue "
                          "with --resume; the points measured before are kept")

    def update_meta(self, change: Callable[[RunMeta], RunMeta]) -> None:
        """run.json read, `change(meta)` written whole."""
        self.write_meta(change(self.read_meta()))

    # -- rows -------------------------------------------------------------------------------------------------------
    def append_points(self, rows: list[dict]) -> None:
        """The commit record: a point exists once its rows are here (a mix point's, every model's at once)."""
        append_rows(self.points, POINT_COLUMNS, rows)

    def append_batches(self, rows: list[dict]) -> None:
        append_rows(self.batches, BATCH_COLUMNS, rows)

    def measured(self) -> dict[tuple[int, float], bool]:
        """(N, rate) -> whether it bounds N's saturation from above (congested, or not settled: --rate auto probes
        below it), for every point in points.csv."""
        if not self.points.exists():
            return {}
        text = complete_text(self.points)
        if not text.strip():
            return {}
        frame = pd.read_csv(io.StringIO(text))
        congested = flags(frame.congested)
        if "reason" in frame:
            congested |= frame.reason.map(unsettled).astype(bool)
        return {(int(b), float(r)): bool(c) for b, r, c in zip(frame.batch_size, frame.rate_qps, congested)}

    def point_rows(self) -> pd.DataFrame:
        """points.csv without a torn last row (empty when there is none yet)."""
        text = complete_text(self.points) if self.points.exists() else ""
        return pd.read_csv(io.StringIO(text)) if text.strip() else pd.DataFrame()

    # -- its life ---------------------------------------------------------------------------------------------------
    def start(self, meta: RunMeta, force: bool, resume: bool, rows_per_point: int = 1) -> list[str]:
        """Ready to be written: emptied with `force`; repaired with `resume`; a stale start (run.json or batch
        rows without points.csv) begun again as a whole, with `meta` as its run.json. Returns what was repaired."""
        if force:
            for path in (self.points, self.batches, self.run_json):
                path.unlink(missing_ok=True)
        notes = self.repair(rows_per_point) if resume else []
        if not self.run_json.exists() or not self.points.exists():
            self.batches.unlink(missing_ok=True)  # no batch row of a point never committed
            self.write_meta(meta)
        return notes

    def repair(self, rows_per_point: int = 1) -> list[str]:
        """Before a resume: cut a torn last line from each result file; drop the points.csv rows of a point that
        committed fewer than its `rows_per_point` (a mix point: one per model, all or none), and the batch rows of
        points that have no points.csv row (points.csv is the commit record), so a resumed point is never counted
        twice."""
        point_rows, batch_rows = _result_rows(self.points), _result_rows(self.batches)  # checked, before any change
        notes = [n for n in (cut_partial_line(self.points), cut_partial_line(self.batches)) if n]
        if self.points.exists() and not point_rows:  # not even a header: no point was committed, begun again whole
            self.points.unlink()
            return notes + ["points.csv was empty: the run begins again"]
        if rows_per_point > 1 and len(point_rows) > 1:
            header, body = point_rows[0], point_rows[1:]
            unit = [(dict(zip(header, r)).get("mix", ""), dict(zip(header, r)).get("scale", "")) for r in body]
            counts = Counter(unit)
            whole = [r for r, u in zip(body, unit) if counts[u] >= rows_per_point]
            if len(whole) < len(body):
                _rewrite_csv(self.points, [header] + whole)
                notes.append(f"points.csv: {len(body) - len(whole)} rows of a mix point cut short (not every "
                             "model's row was written) were removed; the point is measured again")
                point_rows = [header] + whole
        rows = batch_rows
        if not rows:
            return notes
        with_mix = "mix" in rows[0]
        committed = {point_key(dict(zip(point_rows[0], r)), with_mix) for r in point_rows[1:]}
        keep = [rows[0]] + [r for r in rows[1:] if point_key(dict(zip(rows[0], r)), with_mix) in committed]
        if len(keep) < len(rows):
            _rewrite_csv(self.batches, keep)
            notes.append(f"batches.csv: {len(rows) - len(keep)} rows of a point that never finished were removed")
        return notes


def _result_rows(path: Path) -> list[list[str]]:
    """A result file's complete rows (blank lines skipped; none when it is missing), every row's point readable: a
    file that is not (binary, edited, another table) is one line before the resume changes anything."""
    if not path.exists():
        return []
    fix = "repair or remove it, or sweep into a new -o (or with --force, measuring every point again)"
    try:
        rows = [r for r in csv.reader(io.StringIO(complete_text(path))) if r]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"'{path}' is not a result file of staronnx ({type(exc).__name__}): {fix}") from None
    if rows and not {"batch_size", "rate_qps"} <= set(rows[0]):
        raise UserError(f"'{path}' has no batch_size and rate_qps columns (edited?): {fix}")
    for line, row in enumerate(rows[1:], start=2):
        try:
            point_key(dict(zip(rows[0], row)))
        except (ValueError, KeyError):
            raise UserError(f"'{path}' line {line} names no point (batch_size and rate_qps must be numbers): "
                            f"{fix}") from None
    return rows


def point_key(row: dict, with_mix: bool = True) -> tuple:
    """Which point a row belongs to: (N, rate), and in a mix also its model, scale and batch-size combination
    (`with_mix`: batches.csv written before it had a mix column)."""
    scale = row.get("scale") or ""
    return (int(row["batch_size"]), float(row["rate_qps"]), row.get("model", "") if scale else "",
            float(scale) if scale else None, row.get("mix", "") if scale and with_mix else "")


def _rewrite_csv(path: Path, rows: list[list[str]]) -> None:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    write_text_atomic(path, text.getvalue(), "free space or fix permissions, then --resume again")
