"""Publishing many events at once: confirmed, pipelined, and accounted for one by one.

Theory of operation
-------------------
- **Pipelined.** Up to ``window`` publishes are in flight at once on the publisher's channel,
  each waiting for its own confirm; a new one starts as soon as one ends. Sequential confirmed
  publishing pays a round trip per event; this pays one per window.
- **Every item accounted for.** Each item ends as one :class:`ItemResult`: ``confirmed`` (the
  broker took it and a queue received it), ``unroutable`` (the broker took it and no queue
  received it) or ``failed`` (not taken: a nack, a timeout, data that is not JSON). Nothing is
  raised for an item; the caller reads :attr:`BulkResult.failed` and decides.
- **Nothing lost, nothing confirmed sent twice.** Each item is an ordinary
  :meth:`~eventrabbit.publisher.Publisher.publish_event`: on a lost connection the unconfirmed
  ones are sent again with the same ``message_id`` within ``publish_timeout``, never one whose
  confirm arrived. An item the connection loss cut off after the broker took it but before its
  confirm may arrive twice (at-least-once, as everywhere).
- **Order.** Items are sent in input order: the first goes alone (it opens the connection if
  none is open, so the others do not queue up for it in an order of their own), the rest in
  turn; a lost connection can reorder the ones sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import EventRabbitError, UnroutableError
from .observed import Outcome
from .publisher import Publisher

#: Publishes in flight at once, by default.
DEFAULT_WINDOW = 256


@dataclass(slots=True, frozen=True)
class ItemResult:
    """How one item of :meth:`Events.publish_many` ended.

    :param index: its position in the items.
    :param outcome: ``Outcome.CONFIRMED``, ``UNROUTABLE`` or ``FAILED``.
    :param message_id: its ``message_id`` (``None``: it was never sent, e.g. not JSON).
    :param error: why it failed or was unroutable.
    """

    index: int
    outcome: Outcome
    message_id: str | None = None
    error: BaseException | None = None


@dataclass(slots=True)
class BulkResult:
    """What :meth:`Events.publish_many` did, item by item (``items`` in input order)."""

    items: list[ItemResult] = field(default_factory=list)
    #: Whether unroutable items count as failures (``mandatory=True``).
    mandatory: bool = False

    @property
    def confirmed(self) -> list[ItemResult]:
        """The items the broker took and a queue received."""
        return [item for item in self.items if item.outcome is Outcome.CONFIRMED]

    @property
    def unroutable(self) -> list[ItemResult]:
        """The items the broker took but no queue received."""
        return [item for item in self.items if item.outcome is Outcome.UNROUTABLE]

    @property
    def failed(self) -> list[ItemResult]:
        """The items not delivered as asked: not taken, or unroutable with ``mandatory``."""
        bad = {Outcome.FAILED, Outcome.UNROUTABLE} if self.mandatory else {Outcome.FAILED}
        return [item for item in self.items if item.outcome in bad]

    @property
    def ok(self) -> bool:
        """Every item was delivered as asked."""
        return not self.failed


async def publish_item(
    publisher: Publisher,
    index: int,
    exchange: str,
    action: str,
    data: Any,
    *,
    key: str = "",
    headers: dict[str, Any] | None = None,
) -> ItemResult:
    """Publish one event and say how it ended, without raising for it."""
    try:
        # Always mandatory on the wire: an unroutable item is reported, not just logged.
        message_id = await publisher.publish_event(
            exchange, action, data, routing_key=key, mandatory=True, headers=headers
        )
    except UnroutableError as exc:
        return ItemResult(index, Outcome.UNROUTABLE, exc.message_id, exc)
    except (EventRabbitError, TypeError) as exc:
        sent: str | None = getattr(exc, "message_id", None)
        return ItemResult(index, Outcome.FAILED, sent, exc)
    return ItemResult(index, Outcome.CONFIRMED, message_id)


async def publish_many(
    publisher: Publisher,
    exchange: str,
    action: str,
    items: Iterable[Any],
    *,
    key: str = "",
    mandatory: bool = False,
    window: int = DEFAULT_WINDOW,
) -> BulkResult:
    """Publish ``{"action": action, "data": item}`` for every item, ``window`` at a time."""
    if window < 1:
        raise ValueError(f"window must be at least 1, not {window}")
    results: dict[int, ItemResult] = {}
    slots = asyncio.Semaphore(window)

    async def one(index: int, data: Any) -> None:
        try:
            results[index] = await publish_item(publisher, index, exchange, action, data, key=key)
        finally:
            slots.release()

    tasks: list[asyncio.Task[None]] = []
    try:
        for index, data in enumerate(items):
            await slots.acquire()
            tasks.append(asyncio.create_task(one(index, data)))
            if index == 0:
                await tasks[0]
        await asyncio.gather(*tasks)
    except BaseException:
        # Cancelled (or the items' iterator raised): what is in flight is cancelled too, and
        # the caller learns nothing more than the exception; the broker may have taken some.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return BulkResult([results[index] for index in range(len(tasks))], mandatory)
