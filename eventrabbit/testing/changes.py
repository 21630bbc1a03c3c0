"""The notification a broker gives when its state changes, for the tasks that wait on it.

Theory of operation
-------------------
A broker lives as long as the process (brokers are module-level, per name) and so outlives
each test's event loop: it must not hold an ``asyncio.Event`` or ``Condition``, which belong
to one loop. Instead every wait makes a future of its own on the loop that runs it and
registers it; :meth:`Changes.fire` completes every registered future and forgets them.

A waiter checks its condition and, if it does not hold, registers and awaits — with no
``await`` in between, so a change cannot slip past unseen — then checks again. What fires
(see the callers): a queue declared or deleted; a message enqueued, delivered, requeued,
taken, purged, expired or dead-lettered; a delivery settled; a consumer added or removed; a
connection opened or closed. A spurious wake costs one look at the state.

A wait may also name a *deadline* (``time.monotonic()``): the moment the next ready message
expires. Expiry is normally driven by a timer on the loop that enqueued the message; a
message enqueued outside any loop, or on a loop that has since ended, has no live timer, and
the deadline makes the waiter wake and expire it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def _wake(waiter: asyncio.Future[None]) -> None:
    # A waiter of an event loop that ended cannot be woken (and nobody awaits it any more).
    if not waiter.done() and not waiter.get_loop().is_closed():
        waiter.set_result(None)


class Changes:
    """Wakes the tasks waiting for a broker's state to change."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def fire(self) -> None:
        """Something changed: wake every waiter, on whichever loop it waits."""
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _wake(waiter)

    async def wait(self, deadline: float | None = None) -> None:
        """Return at the next :meth:`fire`, or at ``deadline`` if that comes first.

        :param deadline: a ``time.monotonic()`` value; ``None``: no deadline.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.add(waiter)
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(0.0, deadline - time.monotonic()), _wake, waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)  # a cancelled wait leaves nothing behind
            if timer is not None:
                timer.cancel()

    async def until(
        self,
        done: Callable[[], bool],
        catch_up: Callable[[], float | None],
        timeout: float | None,  # noqa: ASYNC109 (a deadline)
    ) -> None:
        """Wait until ``done()`` holds, looking again at every change.

        :param catch_up: called before each look to bring the state up to date (expire what
            is due); returns the next deadline, when to look again even if nothing fires.
        :raises TimeoutError: ``done()`` did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                deadline = catch_up()
                if done():
                    return
                await self.wait(deadline)
