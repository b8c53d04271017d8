"""How much repeated measurements of the same thing disagree: the interquartile range over the median (a slow
spell or outliers widen it; unlike the standard deviation, one stray run does not dominate)."""

from __future__ import annotations

import numpy as np

SPREAD = 0.10  # repeated runs disagreeing more than this (IQR / median) are called out as noise


def relative_spread(times) -> float | None:
    """(75th - 25th percentile) / median; None with fewer than 4 values or a median of 0."""
    values = np.asarray([t for t in times if t == t], dtype=float)
    if values.size < 4 or np.median(values) <= 0:
        return None
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float((q75 - q25) / q50)
