"""How messages move through the in-memory broker: into queues when published, out of them
when they die (dead-lettering), and what happens to a connection's queues when it closes.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterator
from typing import Any, Protocol

from aiormq.exceptions import ChannelNotFoundEntity, ConnectionClosed
from pamqp import commands as spec

from .messages import (
    REJECTED,
    Message,
    StoredMessage,
    decode_properties,
    died_in,
    encode_properties,
    record_death,
    ttl_of,
)
from .queues import MemoryQueue
from .topology import Topology

log = logging.getLogger(__name__)


class Connection(Protocol):
    """What the broker needs of a connection (see :mod:`eventrabbit.testing.transport`)."""

    @property
    def loop_is_closed(self) -> bool:
        """Whether the event loop the connection lives on is closed."""
        ...

    def shutdown(self, reason: BaseException) -> None:
        """Close the connection and its channels now, for ``reason``."""
        ...


class MessageFlow(Topology):
    """Topology plus the messages in it: publishing, dead-lettering, connections."""

    def __init__(self) -> None:
        super().__init__()
        #: Every message published, by a client or by ``MemoryBroker.publish``, in order:
        #: each a :class:`~eventrabbit.testing.Message` whose ``queues`` says where it went.
        self.published: list[Message] = []
        self.connections: set[Connection] = set()
        self._seq: Iterator[int] = itertools.count()

    def declare_queue(
        self,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        passive: bool,
        exclusive_owner: object | None,
        connection: object,
    ) -> MemoryQueue:
        """``queue.declare``: the existing queue if it is equivalent, else a new one."""
        if name or passive:
            existing = self.existing_queue(
                name, durable, auto_delete, arguments, passive, connection
            )
            if existing is not None:
                return existing
        else:
            name = f"amq.gen-{secrets.token_urlsafe(16)}"  # a server-named queue
        queue = MemoryQueue(
            name, durable, dict(arguments), self._dead_letter, exclusive_owner, auto_delete
        )
        self.queues[name] = queue
        return queue

    def publish_message(
        self, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
    ) -> Message:
        """Route a message into its queues (or to a direct reply-to consumer).

        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        :raises TypeError: a property AMQP cannot encode.
        """
        self.prune()
        header = encode_properties(properties, len(body))
        decoded = decode_properties(header)
        targets = self.destinations(exchange, routing_key, decoded.headers)
        ttl = ttl_of(decoded)
        for target in targets:
            message = StoredMessage(body, header, exchange, routing_key, next(self._seq))
            reply = self.reply_routes.get(target)
            if reply is not None:
                reply.receiver.receive(reply, None, message)
            else:
                self.queues[target].enqueue(message, ttl)
        record = Message(exchange, routing_key, body, decoded, tuple(targets))
        self.published.append(record)
        return record

    def _dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        exchange = queue.dead_letter_exchange
        if exchange is None:
            return
        properties = record_death(message.properties, message, queue.name, reason)
        key = queue.arguments.get("x-dead-letter-routing-key")
        key = key if isinstance(key, str) else message.routing_key
        try:
            targets = self.destinations(exchange, key, properties.headers)
        except ChannelNotFoundEntity:
            log.warning("dead-letter exchange %r of queue %r does not exist", exchange, queue.name)
            return
        if reason != REJECTED:
            targets = [t for t in targets if not died_in(properties, t)]
        header = encode_properties(properties, len(message.body))
        for target in targets:
            if target in self.queues:
                copy = StoredMessage(message.body, header, exchange, key, next(self._seq))
                self.queues[target].enqueue(copy, None)

    def forget_connection(self, connection: Connection) -> None:
        """A connection closed: its exclusive queues are deleted."""
        self.connections.discard(connection)
        for queue in list(self.queues.values()):
            if queue.exclusive_owner is connection:
                self.delete_queue(queue.name)

    def prune(self) -> None:
        """Close connections whose event loop is gone (left open by an earlier test)."""
        for connection in list(self.connections):
            if connection.loop_is_closed:
                connection.shutdown(ConnectionClosed(320, "CONNECTION_FORCED - event loop closed"))
