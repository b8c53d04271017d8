"""The simulated engine's executor: the real scheduler's tasks take the platform's times on a virtual clock.

StarPU's SimGrid mode in miniature: nothing runs; a task on worker w starts when w is free, then takes
the platform's per-task overhead, the transfers of its inputs held on other memory nodes, its execution
time for (part, worker kind, batch size), and, on a GPU, the copy of final outputs back to host memory.
With `noise_seed`, execution times are drawn from the models' std (seeded: same seed, same run).
"""

from __future__ import annotations

import numpy as np

from .executors import ModelledExecutor, part_range
from .platform import Platform
from .scheduler import PartGraph
from .simtimes import PartTimes
from .workers import HOST, WorkerSpec


class SimExecutor(ModelledExecutor):
    """A ModelledExecutor whose task time is the platform's: overhead + transfers + execution (+ copy back)."""

    needs_input_bytes = True  # the scheduler passes where each task's inputs are (bytes per memory node)
    measures = False  # its durations come from the models: dmda keeps the platform's times (StarPU's simulator)

    def __init__(self, loop, workers: list[WorkerSpec], platform: Platform, times: PartTimes, graph: PartGraph,
                 noise_seed: int | None = None):
        self.workers, self.platform, self.times, self.graph = workers, platform, times, graph
        self.final_out = graph.final_output_bytes_per_sample or [0] * len(graph.deps)
        self.kinds = [w.kind_key for w in workers]
        self.nodes = [w.memory_node for w in workers]
        self.overhead_s = platform.task_us / 1e6
        self.link = platform.link
        self.rng = np.random.default_rng(noise_seed) if noise_seed is not None else None
        self.loop = loop

    def execution_s(self, part: int, kind: str, batch: int, noise: bool = True) -> float:
        mean = self.times.mean(part, kind, batch)
        if self.rng is None or not noise:
            return mean
        return max(float(self.rng.normal(mean, self.times.std(part, kind, batch))), 0.1 * mean)

    def task_s(self, w: int, part: int, batch: int, inputs: dict[str, int], noise: bool = True) -> float:
        node = self.nodes[w]
        total = self.overhead_s + self.execution_s(part, self.kinds[w], batch, noise)
        for n, nbytes in inputs.items():
            if n != node:
                total += self.link.seconds(nbytes)
        if node != HOST:
            total += self.link.seconds(self.final_out[part] * batch)  # results back to host memory
        return total

    def start(self, w: int, k: int, part: int, batch: int, complete, inputs: dict[str, int] | None = None) -> None:
        start = max(self.loop.now(), self.busy_until[w])
        end = start + self.task_s(w, part, batch, inputs or {})
        self.busy_until[w] = end
        self.loop.schedule(end, complete, w, k, part, start, end)

    def service_time(self, w: int, size: int, parts: int | range, runs: int = 1, on_task=None) -> float:
        """S(N) on worker w alone: every part (of a mix's model: its range) in turn, the model's inputs brought
        from the host (no noise). `on_task(part, seconds)` sees each task of the `runs` batches (to calibrate
        performance models)."""
        tasks = [(p, self.task_s(w, p, size, {HOST: self.graph.input_bytes_per_sample[p].get(-1, 0) * size}, False))
                 for p in part_range(parts)]
        if on_task is not None:
            for _ in range(runs):
                for part, seconds in tasks:
                    on_task(part, seconds)
        return sum(seconds for _, seconds in tasks)

