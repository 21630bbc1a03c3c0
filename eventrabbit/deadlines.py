"""Many waits' deadlines on one timer: what a confirmed publish's time limit costs.

Theory of operation
-------------------
``asyncio.timeout`` arms a timer of the event loop per use: for a confirmed publish that is a
``TimerHandle``, a push onto the loop's heap and a cancellation, a few per cent of the CPU a
publish costs. A :class:`Deadlines` keeps the deadlines of the waits in progress in a dict and
arms **one** timer, for the nearest. Starting a wait is a dict insert (and re-arming only when
its deadline is nearer than the armed one: deadlines of one publisher mostly grow), ending it a
dict delete. When the timer fires, every wait past its deadline has its task cancelled and is
remembered as *expired*; the timer is armed again for the nearest deadline left.

The task that waited learns it from :meth:`Deadlines.end` when its wait ends, as
``asyncio.timeout`` does on exit: if its wait expired it calls ``Task.uncancel()`` and raises
its own timeout error instead of the ``CancelledError`` — unless someone else cancelled the
task too (then ``uncancel`` leaves a count above zero and the cancellation goes on).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

#: Seconds before its deadline a wait counts as expired when the timer fires.
_EARLY = 0.0001


class Deadlines:
    """The deadlines of waits in progress, on one timer of ``loop`` (see the module)."""

    __slots__ = ("_expired", "_live", "_loop", "_tickets", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._live: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: set[int] = set()
        self._tickets = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: float, task: asyncio.Task[Any]) -> int:
        """``task`` starts a wait of at most ``seconds``; the ticket :meth:`end` takes."""
        deadline = self._loop.time() + seconds
        ticket = next(self._tickets)
        self._live[ticket] = (deadline, task)
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._fire)
        return ticket

    def end(self, ticket: int) -> bool:
        """The wait of ``ticket`` ended; whether its deadline passed first (its task was then
        cancelled for it)."""
        if self._live.pop(ticket, None) is not None:
            return False
        if ticket in self._expired:
            self._expired.discard(ticket)
            return True
        return False

    @classmethod
    def on(cls, deadlines: Deadlines | None) -> Deadlines:
        """``deadlines`` if it runs on the running loop, else a new one that does."""
        loop = asyncio.get_running_loop()
        return deadlines if deadlines is not None and deadlines._loop is loop else cls(loop)

    @property
    def waiting(self) -> int:
        """Waits in progress."""
        return len(self._live)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time() + _EARLY  # the loop may run a timer a hair before its time
        nearest: float | None = None
        for ticket, (deadline, task) in list(self._live.items()):
            if deadline <= now:
                del self._live[ticket]
                self._expired.add(ticket)
                task.cancel()
            elif nearest is None or deadline < nearest:
                nearest = deadline
        if nearest is not None:
            self._timer = self._loop.call_at(nearest, self._fire)
