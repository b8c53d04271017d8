"""The answer in numbers (pure, exact): the best batch size at each rate, and where each batch size saturates.

A point is *usable* when it measured batches, was not congested, and settled (a point whose latency still rose
after every extension is kept with the note "not settled": its latency is a lower bound, no answer). N*(rho) is
the N of least mean max-latency among the usable points at rho (ties go to the smaller N: less formation time
for the same latency). rho_max(N) is the highest usable rate of N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.schema import unsettled as unsettled_reason

PRECISION = 0.03  # --rate auto: rho_max(N) is known when the congested rate above it is within 3 %


def usable(points: pd.DataFrame) -> pd.DataFrame:
    latency = pd.to_numeric(points["mean_max_latency_ms"], errors="coerce")
    return points[(points["batches"] > 0) & ~points["congested"].astype(bool) & latency.notna() & ~unsettled(points)]


def unsettled(points: pd.DataFrame) -> pd.Series:
    """The points whose queue was still filling after every extension (uncongested, "not settled")."""
    reasons = points["reason"] if "reason" in points else pd.Series("", index=points.index)
    return reasons.map(unsettled_reason).astype(bool)


def envelope(points: pd.DataFrame) -> pd.DataFrame:
    """One row per rate with a usable point: rate_qps, batch_size (N*), mean and std of the max latency; without
    the rates where an unmeasured batch size may have done better (see `unmeasured_better`)."""
    ok = usable(points).sort_values(["rate_qps", "mean_max_latency_ms", "batch_size"])
    best = ok.groupby("rate_qps", sort=True).head(1)
    known = [not unmeasured_better(points, r.rate_qps, r.mean_max_latency_ms) for r in best.itertuples()]
    best = best.loc[np.array(known, dtype=bool)]
    columns = ["rate_qps", "batch_size", "mean_max_latency_ms", "std_max_latency_ms"]
    columns += [c for c in ("p99_latency_ms", "achieved_qps", "fill_ms", "wait_ms", "run_ms")
                if c in best.columns]  # older runs: without
    return best[columns].reset_index(drop=True)


def unmeasured_better(points: pd.DataFrame, rate: float, latency: float) -> bool:
    """Whether a batch size that did not run at `rate`, but ran uncongested above it, would have beaten `latency`
    there. Between two of its rates, its latency interpolated: `--rate auto` refines each N's saturation at rates
    of its own (at N=4's 50 q/s, N=1, measured at 45 and 55, did not run: if its neighbours are faster than N=4
    the best batch size at 50 q/s is not known; if slower, N=4 stays). Below its lowest rate, its latency there
    plus the longer wait for its batch to fill, (N - 1) x (1 / rate - 1 / lowest): a disturbance that congests
    N=2 sends its probes below N=1's whole grid, where N=1 never ran."""
    for n, mine in usable(points).groupby("batch_size"):
        if (points[points.batch_size == n].rate_qps == rate).any():
            continue
        mine = mine.sort_values("rate_qps")
        rates, latencies = mine.rate_qps.to_numpy(float), mine.mean_max_latency_ms.to_numpy(float)
        if rates[0] < rate < rates[-1] and np.interp(rate, rates, latencies) < latency:
            return True
        if 0 < rate < rates[0] and latencies[0] + 1000 * (int(n) - 1) * (1 / rate - 1 / rates[0]) < latency:
            return True
    return False


def rho_max(points: pd.DataFrame) -> dict[int, float | None]:
    """Per batch size, the highest usable rate (None: no usable point)."""
    ok = usable(points)
    return {int(n): (float(ok[ok.batch_size == n].rate_qps.max()) if (ok.batch_size == n).any() else None)
            for n in sorted(points.batch_size.unique())}


def first_congested(points: pd.DataFrame) -> dict[int, float | None]:
    """Per batch size, the lowest rate found congested (None: none in the grid)."""
    bad = points[points["congested"].astype(bool)]
    return {int(n): (float(bad[bad.batch_size == n].rate_qps.min()) if (bad.batch_size == n).any() else None)
            for n in sorted(points.batch_size.unique())}


def first_bounded(points: pd.DataFrame) -> dict[int, float | None]:
    """Per batch size, the lowest rate found congested or not settled (None: neither in the grid): what bounds
    its rho_max from above (a point that did not settle is no answer, and --rate auto probes below it)."""
    bad = points[points["congested"].astype(bool) | unsettled(points)]
    return {int(n): (float(bad[bad.batch_size == n].rate_qps.min()) if (bad.batch_size == n).any() else None)
            for n in sorted(points.batch_size.unique())}


def system_rho_max(points: pd.DataFrame) -> float | None:
    """The highest rate any batch size sustains: how far the system goes with the best N."""
    values = [v for v in rho_max(points).values() if v is not None]
    return max(values) if values else None


def ideal_curve(points: pd.DataFrame, n: int) -> pd.DataFrame:
    """(N-1)/rho + S(N) at the rates of N's points, where S(N) was measured (service_ms)."""
    mine = points[points.batch_size == n]
    service = pd.to_numeric(mine.get("service_ms", pd.Series(dtype=float)), errors="coerce").dropna()
    if service.empty:
        return pd.DataFrame(columns=["rate_qps", "ideal_ms"])
    s_ms = float(service.median())
    rates = sorted(mine.rate_qps.unique())
    return pd.DataFrame({"rate_qps": rates, "ideal_ms": [1000 * (n - 1) / r + s_ms for r in rates]})
