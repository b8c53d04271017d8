"""The one transfer formula: a copy of n bytes between memory nodes costs latency + n / bandwidth (nothing when
there is nothing to copy). dmda predicts with it; the simulator charges it; a platform file states its figures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    bandwidth_Bps: float = 12e9  # PCIe 3.0 x16 in practice: what dmda assumes when no platform says otherwise
    latency_s: float = 10e-6

    def seconds(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.bandwidth_Bps if nbytes > 0 else 0.0


DEFAULT_LINK = Link()
