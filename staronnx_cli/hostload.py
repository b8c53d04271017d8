"""How busy this machine is with work other than ours: recorded at a sweep's start and end, so a latency measured
on a busy (or, in a VM, robbed) machine is called out instead of silently trusted."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .devices import usable_cores

OTHERS_BUSY_CORES = 0.5  # cores busy with other processes from which a sweep's latencies are suspect
STOLEN_CORES = 0.2  # cores' worth of time the hypervisor gave to other guests


def _cpu_ticks(stat: Path) -> tuple[int, int] | None:
    """(busy, stolen) clock ticks since boot of the cores this process may run on, from /proc/stat's per-core
    lines (in a container /proc/stat may show the whole host: its other cores are not ours to worry about)."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    try:
        mine = {f"cpu{c}" for c in os.sched_getaffinity(0)}
    except AttributeError:
        mine = None
    busy = stolen = 0
    seen = False
    for line in lines:
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu" or len(fields) < 8:
            continue
        if mine is not None and fields[0] not in mine:
            continue
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
        busy += user + nice + system + irq + softirq
        stolen += int(fields[8]) if len(fields) > 8 else 0
        seen = True
    return (busy, stolen) if seen else None


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Counters:
    busy_ticks: int
    stolen_ticks: int
    own_cpu_s: float
    at_s: float  # monotonic


def counters(stat: Path = Path("/proc/stat")) -> Counters | None:
    """The machine's and this process's CPU time so far (None where /proc/stat is not there)."""
    ticks = _cpu_ticks(stat)
    return None if ticks is None else Counters(*ticks, _own_cpu_s(), time.monotonic())


def sample_load(when: str, since: Counters | None = None, window_s: float = 0.3,
                stat: Path = Path("/proc/stat")) -> dict:
    """The 1-minute load average against this process's cores and (Linux) the cores busy with other processes
    (the machine's busy time less this process's, worker threads included) and the cores the hypervisor stole:
    since `since` (e.g. over a whole sweep), or over the next `window_s`."""
    sample: dict = {"when": when, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "cores": usable_cores()}
    try:
        sample["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        pass
    if since is None:
        since = counters(stat)
        time.sleep(window_s if since is not None else 0)
    now = counters(stat)
    if since is None or now is None or now.at_s <= since.at_s:
        return sample
    hz, elapsed = os.sysconf("SC_CLK_TCK"), now.at_s - since.at_s
    busy = (now.busy_ticks - since.busy_ticks) / hz / elapsed
    sample["over_s"] = round(elapsed, 2)
    sample["others_busy_cores"] = round(max(0.0, busy - (now.own_cpu_s - since.own_cpu_s) / elapsed), 2)
    sample["stolen_cores"] = round(max(0.0, (now.stolen_ticks - since.stolen_ticks) / hz / elapsed), 2)
    return sample


def busy_warnings(samples: list[dict]) -> list[str]:
    """One warning per sample that shows a busy machine, naming the cause and the fix."""
    warnings = []
    for s in samples:
        cores, when = s.get("cores") or 1, s.get("when", "?")
        others, stolen, load = s.get("others_busy_cores"), s.get("stolen_cores"), s.get("loadavg_1m")
        if others is not None and others >= OTHERS_BUSY_CORES:
            span = "during the sweep" if when == "during" else f"at the sweep's {when}"
            warnings.append(f"{span}, other processes kept {others:g} of {cores} cores busy on average: "
                            "latencies may be high and rho_max low; stop them (see top) and sweep again")
        elif others is None and load is not None and load >= cores:
            warnings.append(f"at the sweep's {when}, the load average was {load:g} on {cores} cores: the machine "
                            "was busy; stop other work and sweep again")
        if stolen is not None and stolen >= STOLEN_CORES:
            span = "during the sweep" if when == "during" else f"at the sweep's {when}"
            warnings.append(f"{span}, the hypervisor took {stolen:g} cores' worth of time for other "
                            "guests (steal): timings on this VM are noisy; use a dedicated machine for figures")
    return warnings
