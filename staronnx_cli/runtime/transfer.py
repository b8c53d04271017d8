"""The one transfer formula: a copy of n bytes between memory nodes costs latency + n / bandwidth (nothing when
there is nothing to copy). dmda predicts with it; the simulator charges it; a platform file states its figures;
a GPU worker measures its own when it is prepared (`fit_link` over timed copies)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    bandwidth_Bps: float = 12e9  # PCIe 3.0 x16 in practice: what dmda assumes when nothing was measured
    latency_s: float = 10e-6

    def seconds(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.bandwidth_Bps if nbytes > 0 else 0.0

    def to_json(self) -> dict:
        return {"bandwidth_GBps": round(self.bandwidth_Bps / 1e9, 3), "latency_us": round(self.latency_s * 1e6, 3)}


DEFAULT_LINK = Link()


def fit_link(samples: list[tuple[int, float]]) -> Link:
    """The link that explains timed copies (bytes, seconds): latency from the smallest size's median, bandwidth from
    the slope between the smallest and the largest size's medians (one size only: bandwidth = bytes / time)."""
    by_size: dict[int, list[float]] = {}
    for nbytes, seconds in samples:
        if nbytes > 0 and seconds > 0:
            by_size.setdefault(int(nbytes), []).append(float(seconds))
    if not by_size:
        raise ValueError("no timed copy to fit a link on")
    small, large = min(by_size), max(by_size)
    t_small, t_large = statistics.median(by_size[small]), statistics.median(by_size[large])
    if large > small and t_large > t_small:
        bandwidth = (large - small) / (t_large - t_small)
        latency = max(0.0, t_small - small / bandwidth)
    else:  # one size, or noise made the larger copy no slower: the whole time counts as bandwidth
        bandwidth, latency = large / t_large, 0.0
    return Link(bandwidth, latency)


def slowest(links: list[Link]) -> Link | None:
    """The link dmda should assume when several GPUs were measured: the least bandwidth (None: none measured)."""
    return min(links, key=lambda link: (link.bandwidth_Bps, -link.latency_s)) if links else None
