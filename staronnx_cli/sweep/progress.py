"""Where a sweep stands, in batches and in seconds of scheduled arrivals. A point's arrivals take a known time
(its batches x N / rate), so the seconds still scheduled give an honest ETA where counting points would not (a
point at 10 q/s takes ten times one at 100 q/s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

EVERY_S = 0.2  # at most this often the listener hears of finished batches (a point's end always)


@dataclass
class SweepProgress:
    batches_done: int = 0
    batches_total: int = 0
    seconds_done: float = 0.0  # of scheduled arrivals
    seconds_total: float = 0.0
    point: str = ""  # the point running now, e.g. "N=4 at 80 q/s"
    listener: Callable[[SweepProgress], None] = field(default=lambda progress: None, repr=False)
    _told_s: float = field(default=0.0, repr=False)
    _point_start: tuple[int, float] = field(default=(0, 0.0), repr=False)
    _point_plan: tuple[int, float] = field(default=(0, 0.0), repr=False)

    def add(self, batches: int, seconds: float) -> None:
        """A point to come (a grid's, or one more probe of --rate auto): its planned batches and the seconds its
        queries take to arrive."""
        self.batches_total += batches
        self.seconds_total += seconds
        self._tell(force=True)

    def start(self, label: str, batches: int, seconds: float) -> None:
        """A point begins: `label` shown (e.g. "N=4 at 80 q/s"), its plan as it was added."""
        self.point = label
        self._point_start = (self.batches_done, self.seconds_done)
        self._point_plan = (batches, seconds)
        self._tell(force=True)

    def batch(self) -> None:
        """A batch finished; never counts past the point's plan (an extended point runs longer than planned)."""
        start_batches, start_seconds = self._point_start
        planned, seconds = self._point_plan
        if self.batches_done - start_batches < planned:
            self.batches_done += 1
            self.seconds_done = min(self.seconds_done + seconds / planned, start_seconds + seconds)
        self._tell()

    def finish(self) -> None:
        """The point is done (run, skipped or stopped early): it counts in full."""
        start_batches, start_seconds = self._point_start
        self.batches_done = start_batches + self._point_plan[0]
        self.seconds_done = start_seconds + self._point_plan[1]
        self._point_start, self._point_plan = (self.batches_done, self.seconds_done), (0, 0.0)
        self._tell(force=True)

    def _tell(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._told_s >= EVERY_S:
            self._told_s = now
            self.listener(self)
