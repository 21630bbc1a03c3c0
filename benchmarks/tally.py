"""Counts handler calls and notes the wall and CPU time of the first and the last one.

Every client's handler calls :meth:`Tally.hit` and nothing else, so the handler costs the same
for all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Tally:
    """Handler calls of one run; :attr:`done` is set at the ``target``-th."""

    __slots__ = (
        "arrivals",
        "count",
        "cpu_first",
        "cpu_last",
        "done",
        "error",
        "first",
        "last",
        "marks",
        "target",
    )

    def __init__(
        self,
        target: int,
        marks: dict[int, Callable[[], None]] | None = None,
        *,
        arrivals: dict[int, float] | None = None,
    ) -> None:
        self.target = target
        #: When given: event ``i``'s handler start, by ``i`` (the latency workload).
        self.arrivals = arrivals
        self.count = 0
        self.first = self.last = 0.0
        self.cpu_first = self.cpu_last = 0.0
        self.done = asyncio.Event()
        #: Called at the given counts (memory samples).
        self.marks = marks or {}
        #: Why the consumer stopped before the target, if it did.
        self.error: BaseException | None = None

    def hit(self, i: int) -> None:
        """One handler call, for event ``i``."""
        if self.arrivals is not None:
            self.arrivals[i] = time.perf_counter()
        self.count += 1
        count = self.count
        if count == 1:
            self.first = time.perf_counter()
            self.cpu_first = time.process_time()
        if self.marks and count in self.marks:
            self.marks[count]()
        if count == self.target:
            self.last = time.perf_counter()
            self.cpu_last = time.process_time()
            self.done.set()

    def fail(self, error: BaseException) -> None:
        """The consumer died: wake the waiter with the reason."""
        self.error = error
        self.done.set()

    def fail_on_error(self, task: asyncio.Future[Any]) -> None:
        """A done callback for a consuming task: :meth:`fail` if it raised."""
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())  # type: ignore[arg-type]

    @property
    def rate(self) -> float:
        """Handler calls per second between the first and the last."""
        return (self.target - 1) / (self.last - self.first)

    @property
    def cpu_per_message(self) -> float:
        """Process CPU seconds per handler call between the first and the last."""
        return (self.cpu_last - self.cpu_first) / (self.target - 1)
