"""Parsing the grid: `--rate 10:100:10` (inclusive) or `10,50,200`; batch sizes `1,2,4`."""

from __future__ import annotations

import math

from ..errors import UserError

MAX_QPS = 1e12  # queries/s: no machine serves a trillion a second; beyond, a typo (and floats lose the batches)
MAX_RATES = 10_000  # rates in one grid: more is a typo (a tiny step), not a sweep anyone waits for


def parse_rate_option(text: str) -> tuple[bool, tuple[float, ...]]:
    """--rate as given: (auto, rates): `auto`, `auto,250,400` (the grid fitted to each N's capacity, and these rates
    measured for every N too: the answer at the rate you run), START:STOP:STEP or a list."""
    head, _, rest = text.strip().partition(",")
    if head.strip() == "auto":
        return True, tuple(parse_rates(rest, text)) if rest.strip() else ()
    return False, tuple(parse_rates(text))


def parse_rates(text: str, shown: str = "") -> list[float]:
    """--rate's rates; `shown`: how the option was written, for the messages (auto,x: the whole of it)."""
    shown = shown or text
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not all(math.isfinite(v) for v in (start, stop, step)):
                raise UserError(f"--rate {shown}: START, STOP and STEP must be finite numbers, e.g. 10:100:10")
            if step <= 0:
                raise UserError(f"--rate {shown}: the step must be positive, e.g. 10:100:10")
            if stop < start:
                raise UserError(f"--rate {shown}: STOP is below START; write START:STOP:STEP, e.g. 10:100:10")
            count = int(round((stop - start) / step)) + 1
            if count > MAX_RATES:
                raise UserError(f"--rate {shown}: {count:,} rates in one grid (at most {MAX_RATES:,}); use a larger "
                                "step")
            rates = [round(start + i * step, 9) for i in range(max(count, 0))]
        else:
            rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--rate '{shown}': write auto, auto,250 (auto and your rates), START:STOP:STEP or a list such "
                        "as 10,50,200") from None
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates):
        raise UserError(f"--rate {shown}: every rate must be a positive, finite number (queries per second)")
    if max(rates) > MAX_QPS:
        raise UserError(f"--rate {shown}: {max(rates):.3g} q/s is more than any machine serves (at most {MAX_QPS:g})")
    if len(rates) > MAX_RATES:
        raise UserError(f"--rate {shown}: {len(rates):,} rates in one grid (at most {MAX_RATES:,})")
    return sorted(set(rates))
