"""Parsing the grid: `--rate 10:100:10` (inclusive) or `10,50,200`; batch sizes `1,2,4`."""

from __future__ import annotations

from ..errors import UserError


def parse_rates(text: str) -> list[float]:
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise UserError(f"--rate {text}: the step must be positive, e.g. 10:100:10")
            if stop < start:
                raise UserError(f"--rate {text}: STOP is below START; write START:STOP:STEP, e.g. 10:100:10")
            count = int(round((stop - start) / step)) + 1
            rates = [round(start + i * step, 9) for i in range(max(count, 0))]
        else:
            rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--rate '{text}': write START:STOP:STEP or a list such as 10,50,200") from None
    if not rates or any(r <= 0 for r in rates):
        raise UserError(f"--rate {text}: every rate must be positive (queries per second)")
    return sorted(set(rates))
