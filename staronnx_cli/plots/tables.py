"""The answer as tables: the envelope (rate, best N, latency) and rho_max per N, for Rich or Markdown."""

from __future__ import annotations

from ..analysis.summary import best_points, saturation
from ..analysis.verdict import ms
from ..results.read import Run


def envelope_rows(run: Run) -> list[dict]:
    """For each rate with an uncongested point: the best N, its worst-case latency (mean, std), ideal, ratio; the
    queries' p99 latency, the rate served, and the latency's parts."""
    rows = [{"rate q/s": f"{r['rate_qps']:g}", "best N": str(r["batch_size"]),
             "mean max-latency ms": _ms(r["mean_max_latency_ms"]), "std ms": _ms(r["std_max_latency_ms"]),
             "ideal ms": _ms(r["ideal_latency_ms"]), "measured/ideal": _fixed(r["latency_over_ideal"], 3),
             "p99 ms": _ms(r["p99_latency_ms"]), "served q/s": _fixed(r["achieved_qps"], 1),
             "fill + wait + run ms": _parts(r)}
            for r in best_points(run)]
    if not any(row["fill + wait + run ms"] for row in rows):  # a run before schema 5: no empty column
        for row in rows:
            del row["fill + wait + run ms"]
    return rows


def _parts(r: dict) -> str:
    """Where the worst-case latency went: filling the batch, waiting for a worker, running ('' for older runs)."""
    parts = [r.get(key) for key in ("fill_ms", "wait_ms", "run_ms")]
    return " + ".join(_ms(max(p, 0.0)) for p in parts if p is not None) if None not in parts else ""


def rho_rows(run: Run) -> list[dict]:
    """Per N: rho_max, the first congested rate, S(N) of the fastest worker, and the workers' capacity."""
    return [{"N": str(r["batch_size"]),
             "rho_max q/s": f"{r['rho_max_qps']:g}" if r["rho_max_qps"] is not None else
             ("failed" if r["failed"] else "none (congested at every rate)"),
             "first congested q/s": "beyond the grid" if r["first_congested_qps"] is None else
             f"{r['first_congested_qps']:g}",
             "S(N) ms (fastest)": _ms(r["service_ms"]), "capacity q/s": _fixed(r["capacity_qps"], 1)}
            for r in saturation(run)]


def _ms(value: float | None) -> str:
    """Milliseconds: two decimals from 1 ms (12.50), three significant figures below (0.0412)."""
    return "" if value is None else f"{value:.2f}" if value >= 1 or value == 0 else ms(value)


def _fixed(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "_no uncongested point_\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def cell(value) -> str:
    """A table cell: missing values (None, NaN) blank, floats without float noise (0.30000000000000004)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def rich_table(rows: list[dict], title: str, text_columns: tuple[str, ...] = ()):
    """Numbers right-aligned; `text_columns` left-aligned. No cell or header is ever cut: on a narrow terminal
    they fold onto more lines (Rich's default would end them in '...')."""
    from rich.table import Table

    table = Table(title=title)
    for column in (rows[0] if rows else {"": ""}):
        if column in text_columns:  # no min_width: Rich would crop the table's right side to honour it
            table.add_column(column, justify="left", overflow="fold")
        else:
            table.add_column(column, justify="right", overflow="fold")
    for r in rows:
        table.add_row(*[cell(v) for v in r.values()])
    return table
