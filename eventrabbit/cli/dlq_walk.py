"""A walk through a dead-letter queue, front to back, that takes nothing from it but what is
moved or deleted, and leaves the rest in its order.

Theory of operation
-------------------
- **Held, not taken.** The walk consumes the queue on one channel with manual acks. Each
  delivery is *held* (unacked) until the caller acks it (moved or deleted). At the end the
  consumer is cancelled and what is still held goes back with one ``multiple`` nack (requeue)
  per consumer, the oldest first (:mod:`.dlq_held`).
- **Order.** A classic queue puts a returned message back where it was: the walk may stop
  anywhere. A quorum queue (RabbitMQ 3.10) puts returned messages *behind* all others, in the
  order returned; so on a quorum queue the walk reads on to the end, holding what arrived
  meanwhile too, and gives it all back (:mod:`.dlq_kind` tells which). Its returns keep their
  order while the queue's client in the channel has fewer than 32 commands in flight (past
  that it sends them by consumer, in no useful order): the walk starts at most
  :data:`MAX_CONSUMERS` consumers on a quorum queue, and refuses one deeper than that many
  windows. (A message arriving between its last read and its returns lands before them.)
- **At most one duplicate.** A move is published on that same channel, with a confirm, and
  acked only after the confirm. A channel's frames are handled in order, so when a publish is
  confirmed the ack sent before it has been taken: a walk that dies at any moment leaves at
  most one message both in its work queue and still in the dead-letter queue.
- **Bounded memory.** The channel's prefetch (:data:`WINDOW`, ``--read-ahead``) bounds what
  the walk reads ahead. Held deliveries count against it, and RabbitMQ applies a new prefetch
  only to consumers started after it: when the consumer holds a whole window, it is cancelled
  (its deliveries stay held) and a new one takes over. The walk keeps a few numbers per
  consumer, not the messages.
- **Where it ends** for its caller: at the queue's depth when the walk began (what arrives
  later is not handed out), at the caller's bound, or when no message is ready any more
  (another consumer took them).
- **Interrupted** (Ctrl-C, a lost connection, a kill): what is held goes back. The walk gives
  it back as above while it can still talk to the broker; otherwise the broker does — in
  place on a classic queue; on a quorum queue behind the messages not read, by consumer.
- A returned message is flagged *redelivered* when next delivered, and a quorum queue counts
  it in ``x-delivery-count``: delivery metadata, not the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from types import TracebackType

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage

from eventrabbit.confirm import publish_confirmed
from eventrabbit.connection import check_url, close_connection, open_connection
from eventrabbit.copies import RawProperties
from eventrabbit.properties import Stashed, WireProperties
from eventrabbit.topology import DEFAULT_EXCHANGE
from eventrabbit.wire_transport import wire_of

from .dlq_held import Held
from .dlq_kind import MAX_CONSUMERS, depth, is_quorum, too_deep
from .dlq_rules import Delivery, read_letter
from .exits import CommandError, Exit

#: The most deliveries read ahead of the caller (the prefetch of each consumer).
WINDOW = 1000
#: Seconds without a delivery after which the walk asks whether any message is still ready.
IDLE = 1.0


class Walk:
    """``async with Walk(url, queue) as walk``: the queue's ``depth``, then
    ``walk.deliveries()`` in order; :meth:`publish` and :meth:`ack` move or delete one."""

    def __init__(self, url: str, queue: str, *, window: int = WINDOW) -> None:
        self.url = url
        self.queue = queue
        self.window = window
        #: Ready messages when the walk began.
        self.depth = 0
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._stash: dict[int, Stashed] = {}
        self._inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._consumer: str | None = None
        self._held = Held()
        self._prefetch = window
        #: A quorum queue (or a stream): what the walk gives back goes behind the rest.
        self.quorum = False

    async def __aenter__(self) -> Walk:
        check_url(self.url)
        self._connection = await open_connection(self.url)
        try:
            self.depth = await depth(self._connection, self.queue)
            self.quorum = await is_quorum(self.url, self.queue)
            channel = self._channel = await self._connection.channel(publisher_confirms=True)
            wire = wire_of(self._connection)
            if wire is not None:  # the bytes each delivery's properties arrived as
                self._stash = wire.watch(channel.number)
        except BaseException:
            await close_connection(self._connection)
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Checked before our own close: a connection closed under the walk means the broker
        # went away (it returns what was held), whatever error that surfaced as.
        lost = self._connection is not None and self._connection.is_closed
        try:
            await self._return_held()
        finally:
            await close_connection(self._connection)
        if lost and isinstance(exc, Exception) and not isinstance(exc, CommandError):
            raise CommandError(
                f"lost the connection to the broker: {type(exc).__name__}: {exc}",
                Exit.UNREACHABLE,
            ) from exc

    @property
    def channel(self) -> aiormq.abc.AbstractChannel:
        """The walk's channel (open inside ``async with``)."""
        if self._channel is None:
            raise RuntimeError("use the walk inside `async with`")
        return self._channel

    async def purge(self) -> int:
        """Delete every ready message of the queue at once; how many."""
        ok = await self.channel.queue_purge(self.queue)
        return int(ok.message_count or 0)

    async def deliveries(self, most: int | None = None) -> AsyncGenerator[Delivery, None]:
        """The queue's messages in order, at most ``most`` and the depth it had, each held
        until :meth:`ack` takes it.

        :raises CommandError: (``USAGE``) a quorum queue deeper than the walk can give back
            in order.
        """
        total = self.depth if most is None else min(self.depth, most)
        if total <= 0:
            return
        if self.quorum and self.depth > MAX_CONSUMERS * self.window:
            raise CommandError(too_deep(self.queue, self.depth, self.window), Exit.USAGE)
        # A quorum queue is read to its end, whatever the caller takes.
        self._prefetch = self.window if self.quorum else min(self.window, total)
        await self.channel.basic_qos(prefetch_count=self._prefetch)
        await self._consume()
        for _ in range(total):
            message = await self._take()
            if message is None:
                return
            tag = int(message.delivery_tag or 0)
            self._held.reading(_consumer_of(message), tag)
            yield self._delivery(tag, message)
            self._held.read()

    async def _take(self) -> DeliveredMessage | None:
        """The next delivery; ``None`` when none is ready (or a quorum walk is full)."""
        if self._held.here >= self._prefetch:  # no credit left: all it was sent is held
            if self.quorum and self._held.consumers >= MAX_CONSUMERS:
                return None
            await self._cancel()  # its deliveries stay held
            await self._consume()
        return await self._next()

    async def publish(self, queue: str, body: bytes, properties: WireProperties) -> bool:
        """Publish a copy to ``queue`` through the default exchange and wait for the confirm.

        :returns: ``False`` when no queue ``queue`` exists (the broker returned it).
        :raises PublishError: the broker refused it, or the channel went.
        """
        return await publish_confirmed(
            self.channel,
            body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=queue,
            properties=RawProperties(properties),
            mandatory=True,
        )

    async def ack(self, tag: int) -> None:
        """Take the delivery ``tag`` from the queue for good."""
        self._held.acked(tag)  # first: cancelled meanwhile, it may have gone out
        await self.channel.basic_ack(tag)

    async def _consume(self) -> None:
        ok = await self.channel.basic_consume(self.queue, self._on_message)
        self._consumer = str(ok.consumer_tag)
        self._held.started(self._consumer)

    async def _cancel(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # Deliveries sent before the CancelOk are in the inbox once it is here.
            await self.channel.basic_cancel(consumer)

    async def _on_message(self, message: DeliveredMessage) -> None:
        self._held.delivered(_consumer_of(message), int(message.delivery_tag or 0))
        self._inbox.put_nowait(message)

    async def _next(self) -> DeliveredMessage | None:
        while self._inbox.empty():
            getter = asyncio.ensure_future(self._inbox.get())
            closing = self.channel.closing
            try:
                await asyncio.wait(
                    (getter, closing), timeout=IDLE, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                closing.cancel()  # only this observer
                if not getter.done():
                    getter.cancel()  # Queue.get leaves the item it did not return in the queue
            if getter.done() and not getter.cancelled():
                return getter.result()
            if closing.done() and not closing.cancelled():
                closing.result()  # raises why the channel closed
            if self._inbox.empty() and await self._ready() == 0:
                return None
        return self._inbox.get_nowait()

    async def _ready(self) -> int:
        ok = await self.channel.queue_declare(self.queue, passive=True)
        return int(ok.message_count or 0)

    def _delivery(self, tag: int, message: DeliveredMessage) -> Delivery:
        stashed = self._stash.pop(tag, None)
        pamqp = message.header.properties
        # The bytes it arrived with, or pamqp's, where pamqp encodes them back the same.
        raw = stashed.properties if stashed is not None else pamqp.marshal()
        wire, read = read_letter(raw, pamqp, message.body)
        return Delivery(tag, read, wire, message.body)

    async def _return_held(self) -> None:
        channel = self._channel
        if channel is None or channel.is_closed:
            return  # the broker returns what was held
        if self.quorum and self._consumer is not None:
            while not self._inbox.empty() or await self._ready():  # read on to the end
                message = await self._take()
                if message is None:
                    break
                tag = int(message.delivery_tag or 0)
                self._stash.pop(tag, None)
                self._held.reading(_consumer_of(message), tag)
                self._held.read()  # held: nothing read on is taken
        await self._cancel()  # no more deliveries: each consumer's last tag is known
        for tag in self._held.nacks():
            await channel.basic_nack(tag, multiple=True, requeue=True)
        await channel.close()  # after the nacks on the wire: they are taken when it is done


def _consumer_of(message: DeliveredMessage) -> str:
    return str(getattr(message.delivery, "consumer_tag", ""))  # a Deliver's: the walk gets no other
