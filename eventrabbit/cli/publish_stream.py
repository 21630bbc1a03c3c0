"""Publishing events with confirms outstanding: the engine of ``eventrabbit publish``.

Theory of operation
-------------------
Up to ``window`` publishes are in flight at once, each waiting for its own confirm through the
library's :class:`~eventrabbit.publisher.Publisher`; an event counts as published only once
the broker confirmed it. Publishes start in input order, and the channel writes them in the
order they start (its write lock is first come, first served), so a queue receives them in
input order — unless a lost connection makes the publisher send some again.

Each event is :func:`eventrabbit.bulk.publish_item` (as in ``events.publish_many``): every
publish asks the broker to return what no queue receives, so unroutable events are counted
whether or not ``--mandatory`` makes them an error. The first
publish that fails stops the intake: what is in flight is awaited and counted, nothing new
starts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from eventrabbit import Outcome
from eventrabbit.bulk import publish_item
from eventrabbit.publisher import Publisher

from .output import progress

#: Publishes in flight at once: enough to keep a remote broker busy, few enough that a
#: failure leaves little in the air.
WINDOW = 256


class Pipeline:
    """Publishes the events of one command, ``window`` at a time, and counts them."""

    def __init__(
        self,
        publisher: Publisher,
        exchange: str,
        action: str,
        key: str,
        headers: dict[str, Any] | None,
        *,
        window: int = WINDOW,
        progress_every: float | None = None,
    ) -> None:
        self._publisher = publisher
        self._where = (exchange, action, key)
        self._headers = headers
        self._slots = asyncio.Semaphore(window)
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress_every = progress_every
        #: Publishes started and not yet confirmed or failed.
        self.in_flight = 0
        self._next_progress = asyncio.get_running_loop().time() + (progress_every or 0)
        #: Events the broker confirmed (routed or not).
        self.published = 0
        #: Of those, the ones no queue received.
        self.unroutable = 0
        #: The message id of the last event confirmed.
        self.message_id: str | None = None
        #: The first publish that failed; set, nothing more starts.
        self.failure: Exception | None = None

    async def submit(self, data: dict[str, Any]) -> bool:
        """Start publishing ``data`` (waiting for a free slot first).

        :returns: ``False`` when an earlier publish failed: nothing was started.
        """
        await self._slots.acquire()
        if self.failure is not None:
            self._slots.release()
            return False
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._publish(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._report()
        return True

    async def drain(self) -> None:
        """Wait until every publish started has been confirmed or has failed."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def _publish(self, data: dict[str, Any]) -> None:
        exchange, action, key = self._where
        try:
            item = await publish_item(
                self._publisher, 0, exchange, action, data, key=key, headers=self._headers
            )
        finally:
            self.in_flight -= 1
            self._slots.release()
        if item.outcome is Outcome.FAILED:
            if self.failure is None and isinstance(item.error, Exception):
                self.failure = item.error
            return
        self.message_id = item.message_id
        self.published += 1  # confirmed by the broker, routed or not
        if item.outcome is Outcome.UNROUTABLE:
            self.unroutable += 1

    def _report(self) -> None:
        if self._progress_every is None:
            return
        now = asyncio.get_running_loop().time()
        if now >= self._next_progress:
            self._next_progress = now + self._progress_every
            progress(
                f"eventrabbit: {self.published} published, {self.in_flight} waiting for "
                "their confirm"
            )
