"""A GPU worker's look-ahead (StarPU's prefetch), as pure bookkeeping: which held tasks have their copies issued.

A GPU worker holds its next tasks (the scheduler hands it up to 4). While the current task computes, the host
inputs of the next `depth` tasks are copied to the device on the worker's copy stream, in task order, each
batch of copies closed by a CUDA event; a task then waits for its own event only, not for the whole stream.
`copy(item)` issues one task's copies and returns a handle; a copy that fails is that task's failure, raised
when it is taken, never the failure of the task running meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

PREFETCH_DEPTH = 2  # tasks whose copies may be in flight beyond the one about to run
Handle = TypeVar("Handle")  # what the copy function returns for a task (its copies, to wait for)


class Prefetcher(Generic[Handle]):
    def __init__(self, copy: Callable[[tuple], Handle], depth: int = PREFETCH_DEPTH):
        self.copy, self.depth = copy, depth
        self.issued: dict[tuple[int, int], Handle | Exception] = {}  # (batch, part) -> handle of its copies

    def ahead(self, pending: Sequence[tuple]) -> None:
        """Issue, in order, the copies of the task about to run and of up to `depth` held after it."""
        for item in list(pending)[: 1 + self.depth]:
            key = (item[0], item[1])
            if key not in self.issued:
                self.issued[key] = self._issue(item)

    def take(self, item: tuple) -> Handle:
        """The handle of this task's copies (issued now if they were not), forgotten here."""
        key = (item[0], item[1])
        handle = self.issued.pop(key) if key in self.issued else self._issue(item)
        if isinstance(handle, Exception):
            raise handle
        return handle

    def _issue(self, item: tuple) -> Handle | Exception:
        try:
            return self.copy(item)
        except Exception as exc:  # noqa: BLE001 - kept for the task it belongs to
            return exc
