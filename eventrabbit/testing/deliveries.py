"""The consuming side of one in-memory channel: its consumers, unacked deliveries, callbacks.

Theory of operation
-------------------
A queue offers a message to a consumer when :meth:`Deliveries.can_receive` allows (prefetch,
open channel); :meth:`Deliveries.receive` numbers it with the channel's next delivery tag,
keeps it as unacked (unless ``no_ack``) and runs the consumer's callback in a task of its own,
as aiormq does. Acks, nacks and rejects settle unacked deliveries with an
:class:`~.queues.Outcome`; :meth:`Deliveries.release` gives all of them back to their queues
when the channel closes. After settling, the queues involved :meth:`~.queues.MemoryQueue.resume`:
a consumer that was at its prefetch limit may take more now.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiormq.abc
from pamqp import commands as spec
from pamqp.header import ContentHeader

from .messages import StoredMessage
from .queues import Consumer, MemoryQueue, Outcome

log = logging.getLogger(__name__)


class Channel(Protocol):
    """What deliveries need of their channel (:mod:`eventrabbit.testing.channel`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the channel's callback tasks run on."""
        ...

    @property
    def is_closed(self) -> bool:
        """Whether the channel has closed."""
        ...

    @property
    def on_consumer_cancel_callbacks(self) -> set[Callable[[spec.Basic.Cancel], Any]]:
        """Called when the broker cancels one of the channel's consumers."""
        ...


@dataclass(slots=True, frozen=True)
class Delivery:
    """A message handed to a consumer (or to ``basic.get``) and not settled yet."""

    consumer: Consumer | None  # None for basic.get
    queue: MemoryQueue
    message: StoredMessage


class Deliveries:
    """Consumers, unacked deliveries and callback tasks of one channel."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.consumers: dict[str, Consumer] = {}
        #: ``basic.qos`` prefetch for new consumers, and for the whole channel (``global_``).
        self.prefetch = 0
        self.global_prefetch = 0
        self._unacked: dict[int, Delivery] = {}
        self._tag = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------- the queues' Receiver

    def can_receive(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` may take a message now."""
        if self.channel.is_closed:
            return False
        if consumer.no_ack:
            return True
        if consumer.prefetch and consumer.unacked >= consumer.prefetch:
            return False
        return not self.global_prefetch or len(self._unacked) < self.global_prefetch

    def receive(
        self, consumer: Consumer, queue: MemoryQueue | None, message: StoredMessage
    ) -> None:
        """Deliver ``message`` to ``consumer``: a ``Basic.Deliver`` and a callback task."""
        tag = self._track(consumer, queue, message, consumer.no_ack)
        frame = spec.Basic.Deliver(
            consumer_tag=consumer.tag,
            delivery_tag=tag,
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
        )
        delivered = self._message(frame, queue, message)
        task = self.channel.loop.create_task(_run_callback(consumer.callback, delivered))
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def cancel_by_broker(self, consumer: Consumer) -> None:
        """The broker cancelled ``consumer`` (its queue was deleted): tell the callbacks."""
        self.consumers.pop(consumer.tag, None)
        frame = spec.Basic.Cancel(consumer_tag=consumer.tag, nowait=True)
        for callback in list(self.channel.on_consumer_cancel_callbacks):
            try:
                result = callback(frame)
                if inspect.isawaitable(result):
                    self.channel.loop.create_task(_await(result))
            except Exception:
                log.exception("Unhandled consumer cancel callback exception")

    # --------------------------------------------------------------------- basic.get

    def get(self, queue: MemoryQueue, no_ack: bool) -> aiormq.abc.DeliveredMessage:
        """Take the next ready message of ``queue`` (``Basic.GetOk``), or none
        (``Basic.GetEmpty``)."""
        message = queue.take()
        if message is None:
            channel = cast(aiormq.abc.AbstractChannel, self.channel)
            return aiormq.abc.DeliveredMessage(spec.Basic.GetEmpty(), ContentHeader(), b"", channel)
        frame = spec.Basic.GetOk(
            delivery_tag=self._track(None, queue, message, no_ack),
            redelivered=message.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_count=len(queue.ready),
        )
        return self._message(frame, queue, message)

    # --------------------------------------------------------------------- bookkeeping

    def _track(
        self,
        consumer: Consumer | None,
        queue: MemoryQueue | None,
        message: StoredMessage,
        no_ack: bool,
    ) -> int:
        """Number a delivery and, unless ``no_ack``, remember it as unacked."""
        self._tag += 1
        if not no_ack and queue is not None:
            self._unacked[self._tag] = Delivery(consumer, queue, message)
            queue.hold()
            if consumer is not None:
                consumer.unacked += 1
        return self._tag

    def _message(
        self,
        frame: spec.Basic.Deliver | spec.Basic.GetOk,
        queue: MemoryQueue | None,
        message: StoredMessage,
    ) -> aiormq.abc.DeliveredMessage:
        """The ``DeliveredMessage`` a consumer gets, with fresh properties."""
        properties = message.properties
        if queue is not None and queue.delivery_limit is not None and message.returns:
            properties.headers = {**(properties.headers or {}), "x-delivery-count": message.returns}
        header = ContentHeader(properties=properties, body_size=len(message.body))
        channel = cast(aiormq.abc.AbstractChannel, self.channel)
        return aiormq.abc.DeliveredMessage(frame, header, message.body, channel)

    def settle(self, tag: int, multiple: bool, outcome: Outcome) -> bool:
        """Ack, nack or reject; ``False`` for a tag that is not unacked (nothing done)."""
        if (tag or not multiple) and tag not in self._unacked:
            return False
        tags = [t for t in self._unacked if t <= tag or not tag] if multiple else [tag]
        settled = [self._settle(self._unacked.pop(one), outcome) for one in tags]
        resume([*settled, *self.consumed_queues()])
        return True

    def consumed_queues(self) -> list[MemoryQueue]:
        """The queues this channel's consumers consume."""
        return [c.queue for c in self.consumers.values() if c.queue is not None]

    def release(self) -> None:
        """The channel closed: every unacked message goes back to its queue, redelivered."""
        deliveries, self._unacked = list(self._unacked.values()), {}
        resume([self._settle(delivery, Outcome.REQUEUE) for delivery in deliveries])

    @staticmethod
    def _settle(delivery: Delivery, outcome: Outcome) -> MemoryQueue:
        if delivery.consumer is not None:
            delivery.consumer.unacked -= 1
        delivery.queue.settle(delivery.message, outcome)
        return delivery.queue

    # --------------------------------------------------------------------------- tasks

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The callback tasks still running (but the current task)."""
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        return [task for task in self._tasks if task is not current]

    def cancel_tasks(self) -> None:
        """Cancel the running callbacks, as closing an aiormq channel does."""
        if not self.channel.loop.is_closed():
            for task in self.pending_tasks():
                task.cancel()

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Consumer callback failed", exc_info=task.exception())


def resume(queues: Iterable[MemoryQueue]) -> None:
    """Let each of ``queues`` (once) expire what is due and deliver what it can now."""
    for queue in dict.fromkeys(queues):
        queue.resume()


async def _await(awaitable: Any) -> None:
    await awaitable


async def _run_callback(
    callback: Callable[[aiormq.abc.DeliveredMessage], Any], message: aiormq.abc.DeliveredMessage
) -> None:
    result = callback(message)
    if inspect.isawaitable(result):
        await result
