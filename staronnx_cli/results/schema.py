"""Result files of a sweep: column names live here once; rows are appended as each point finishes, whole or not
at all. points.csv is the commit record: a point's batch rows count only once its points.csv row is there."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd

from ..errors import UserError, first_line
from ..inputfile import MAX_JSON_BYTES, MAX_RESULT_BYTES, checked_input

RUN_SCHEMA_VERSION = 5  # 5: fill_ms, wait_ms, run_ms, p90_latency_ms, p95_latency_ms, task_over_s; 4: the model
# column (and a mix's scale, mix, latency_target_ms, met_target)
RUN_FILES = ("run.json", "points.csv", "batches.csv")  # what a run directory is made of (never overwritten by plots)
POINT_COLUMNS = ["system", "engine", "policy", "workers", "batch_size", "rate_qps", "batches", "mean_max_latency_ms",
                 "std_max_latency_ms", "p50_latency_ms", "p99_latency_ms", "max_latency_ms", "achieved_qps",
                 "congested", "reason", "arrival", "max_queue_delay_ms", "mean_queries_per_batch", "utilisation",
                 "release_lateness_p99_us", "service_ms", "ideal_latency_ms", "latency_over_ideal", "errors",
                 "warmup_batches", "capacity_qps", "model", "scale", "mix", "latency_target_ms", "met_target",
                 "fill_ms", "wait_ms", "run_ms", "p90_latency_ms", "p95_latency_ms", "task_over_s"]
BATCH_COLUMNS = ["system", "batch_size", "rate_qps", "batch_index", "queries", "measured", "first_arrival_s",
                 "scheduled_release_s", "actual_release_s", "end_s", "first_query_latency_ms", "placement",
                 "task_times", "error", "transfer_times", "model", "scale", "mix"]

# what other tools may rely on (DESIGN.md section 5): plots and reports need these, older runs have them
POINT_COLUMNS_REQUIRED = POINT_COLUMNS[:14]
DRAINING = "a backlog left by a slowdown, still draining"  # in an uncongested point's reason: its latency falls
SLOWED = "slowed tasks"  # in a congested point's reason: its tasks ran well above the S(N) measured alone
RETRIED = "measured twice"  # in a point's reason: its first try congested well within the capacity
NOT_SETTLED = "not settled"  # a point's reason begins so when its latency still rose after every extension


TRUE = ("true", "1", "1.0")  # a CSV's True as written (True), or read back as a number
FALSE = ("false", "0", "0.0")


def flags(column: pd.Series) -> pd.Series:
    """A True/False column of a result file as booleans (congested, measured, met_target): anything else is False."""
    return column.astype(str).str.strip().str.lower().isin(TRUE)


def flag(value, missing: bool) -> bool:
    """One True/False cell as a boolean; `missing` where the cell or its column is absent (older files)."""
    text = str(value).strip().lower()
    return missing if text in ("", "nan", "none") else text in TRUE


def unsettled(reason) -> bool:
    """Whether a points.csv `reason` says the point did not settle: uncongested, its latency a lower bound, no
    answer (the judge writes it; the envelope, advise and --rate auto read it)."""
    return str(reason or "").startswith(NOT_SETTLED)
BATCH_COLUMNS_REQUIRED = ["system", "batch_size", "rate_qps", "batch_index", "scheduled_release_s", "actual_release_s",
                          "end_s", "first_query_latency_ms"]


def append_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Rows written whole or not at all: rendered first, then one write, flushed and synced to disk; a write the
    file system refuses halfway (disk full) is cut back. A crash can leave at most a partial last line, which
    `cut_partial_line` removes before the file grows. A file begun by an older staronnx keeps its own header:
    rows are written in its columns (a resumed run's columns never shift)."""
    text = io.StringIO()
    size = path.stat().st_size if path.exists() else 0
    header = _header(path) if size else None
    writer = csv.DictWriter(text, fieldnames=header or columns, extrasaction="ignore")
    if size == 0:
        writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    try:
        if path.is_symlink():  # a link planted in -o would have the rows written outside it
            raise UserError(f"'{path}' is a symbolic link: staronnx never writes a result through one; remove it, "
                            "or choose another -o")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            written = 0
            while written < len(data):  # unbuffered: nothing is left in a buffer to be flushed later
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # shrinking frees space: it works on a full disk
            raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write '{path}' ({exc.strerror or first_line(exc)}): the points measured before are "
                        "kept; free space or fix permissions, then continue with --resume") from None


def _header(path: Path) -> list[str] | None:
    """A result file's column names (its first line), None where it has no complete first line or cannot be read
    (the write that follows says why)."""
    try:
        with open(path, newline="") as f:
            first = f.readline(1 << 16)
    except (OSError, UnicodeDecodeError):
        return None
    return next(csv.reader([first])) if first.endswith("\n") else None


def cut_partial_line(path: Path) -> str:
    """A result file whose last line was cut (a crash, a full disk) loses that line; '' or a notice saying so."""
    if not path.exists():
        return ""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return ""
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return f"{path.name}: its last line was incomplete (an interrupted write) and was removed"


def complete_text(path: Path) -> str:
    """A result file's text without a partial last line (for readers: plots never count a torn row)."""
    text = checked_input(path, "result file", "rerun the sweep", MAX_RESULT_BYTES).read_text()
    return text if not text or text.endswith("\n") else text[: text.rfind("\n") + 1]


def read_run_meta(path: Path) -> dict:
    """run.json as a dict; a torn or edited file is one line naming it (a crash while writing it, an editor)."""
    try:
        meta = json.loads(checked_input(path, "run metadata", "sweep again into a new -o", MAX_JSON_BYTES).read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"'{path}' is not valid JSON (cut short or edited): sweep again into a new -o, or with "
                        "--force") from None
    if not isinstance(meta, dict):
        raise UserError(f"'{path}' is not a staronnx run.json: sweep again into a new -o, or with --force")
    return meta
