"""Result files of a sweep: column names live here once; rows are appended as each point finishes."""

from __future__ import annotations

import csv
from pathlib import Path

RUN_SCHEMA_VERSION = 3
POINT_COLUMNS = ["system", "engine", "policy", "workers", "batch_size", "rate_qps", "batches", "mean_max_latency_ms",
                 "std_max_latency_ms", "p50_latency_ms", "p99_latency_ms", "max_latency_ms", "achieved_qps",
                 "congested", "reason", "arrival", "max_queue_delay_ms", "mean_queries_per_batch", "utilisation",
                 "release_lateness_p99_us", "service_ms", "ideal_latency_ms", "latency_over_ideal", "errors",
                 "warmup_batches", "capacity_qps"]
BATCH_COLUMNS = ["system", "batch_size", "rate_qps", "batch_index", "queries", "measured", "first_arrival_s",
                 "scheduled_release_s", "actual_release_s", "end_s", "first_query_latency_ms", "placement",
                 "task_times", "error", "transfer_times"]

# what other tools may rely on (DESIGN.md section 5): plots and reports need these, older runs have them
POINT_COLUMNS_REQUIRED = POINT_COLUMNS[:14]
BATCH_COLUMNS_REQUIRED = ["system", "batch_size", "rate_qps", "batch_index", "scheduled_release_s", "actual_release_s",
                          "end_s", "first_query_latency_ms"]


def append_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        f.flush()
