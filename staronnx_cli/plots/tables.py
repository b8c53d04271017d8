"""The answer as tables: the envelope (rate, best N, latency) and rho_max per N, for Rich or Markdown."""

from __future__ import annotations

import pandas as pd

from ..results.read import Run
from . import envelope as env


def envelope_rows(run: Run) -> list[dict]:
    """For each rate with an uncongested point: the best N, its latency (mean and std), measured/ideal."""
    rows = []
    for _, row in env.envelope(run.points).iterrows():
        n = int(row.batch_size)
        ideal = env.ideal_curve(run.points, n)
        hit = ideal[ideal.rate_qps == row.rate_qps]
        ratio = float(row.mean_max_latency_ms) / float(hit.ideal_ms.iloc[0]) if not hit.empty else None
        rows.append({"rate q/s": f"{row.rate_qps:g}", "best N": str(n),
                     "mean max-latency ms": f"{row.mean_max_latency_ms:.2f}",
                     "std ms": "" if pd.isna(row.std_max_latency_ms) else f"{row.std_max_latency_ms:.2f}",
                     "measured/ideal": "" if ratio is None else f"{ratio:.3f}"})
    return rows


def rho_rows(run: Run) -> list[dict]:
    highest, first_bad = env.rho_max(run.points), env.first_congested(run.points)
    return [{"N": str(n), "rho_max q/s": "none" if highest[n] is None else f"{highest[n]:g}",
             "first congested q/s": "beyond the grid" if first_bad[n] is None else f"{first_bad[n]:g}"}
            for n in highest]


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "_no uncongested point_\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def rich_table(rows: list[dict], title: str, text_columns: tuple[str, ...] = ()):
    """Numbers right-aligned; `text_columns` left-aligned and never cut (they wrap instead)."""
    from rich.table import Table

    table = Table(title=title)
    for column in (rows[0] if rows else {"": ""}):
        if column in text_columns:
            longest = max([len(column)] + [len(str(r[column])) for r in rows])
            table.add_column(column, justify="left", overflow="fold", min_width=min(40, longest))
        else:
            table.add_column(column, justify="right")
    for r in rows:
        table.add_row(*[str(v) for v in r.values()])
    return table
