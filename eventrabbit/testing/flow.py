"""How messages move through the in-memory broker: into queues when published, and on to
the dead-letter exchange when they die.

Theory of operation
-------------------
A published message's properties are encoded as on the wire (:mod:`.messages`), routed by
the topology with its routing key and its ``CC``/``BCC`` ones (:mod:`.sender_selected`:
refused with 406 if they are not arrays, ``BCC`` taken out), and copied into each queue it
reaches — or handed straight to a direct reply-to consumer — each copy numbered with the
broker-wide arrival order. A queue whose
message dies calls :meth:`MessageFlow.dead_letter`: with an ``x-dead-letter-exchange`` the
message gets its ``x-death`` headers and is routed there (with ``x-dead-letter-routing-key``
if set, else its own key). As in RabbitMQ, a message that would die again in a queue it died
in before without having been rejected since is dropped, not looped; a missing dead-letter
exchange drops it with a warning. An invalid ``expiration`` is refused (406) before any
queue gets a copy; a full queue with ``x-overflow`` ``reject-publish`` refuses its copy
(:mod:`.limits`), which the published :class:`~.messages.Message` names in ``rejected``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

from aiormq.exceptions import ChannelNotFoundEntity
from pamqp import commands as spec

from .arguments import dead_letter_routing_key
from .deaths import REJECTED, died_in, record_death
from .messages import Message, StoredMessage, decode_properties, encode_properties, ttl_of
from .queues import MemoryQueue
from .sender_selected import BLIND, copied_keys, hide_blind, keys_of
from .topology import Topology

log = logging.getLogger(__name__)


class MessageFlow:
    """Publishing and dead-lettering through a broker's topology."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        #: Every message published, by a client or by ``MemoryBroker.publish``, in order.
        self.published: list[Message] = []
        self._seq: Iterator[int] = itertools.count()

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: spec.Basic.Properties
    ) -> Message:
        """Route a message into its queues (or to a direct reply-to consumer).

        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        :raises aiormq.exceptions.ChannelAccessRefused: an internal exchange.
        :raises aiormq.exceptions.ChannelPreconditionFailed: a ``CC``/``BCC`` header that is
            not an array (:mod:`.sender_selected`), an invalid ``expiration`` (:func:`ttl_of`).
        :raises TypeError: a property AMQP cannot encode.
        """
        header = encode_properties(properties, len(body))
        decoded = decode_properties(header)
        if exchange:  # RabbitMQ looks at the exchange (404, 403) before the message (406)
            self.topology.exchanges.publishable(exchange)
        also = copied_keys(decoded.headers)
        targets = self.topology.destinations(exchange, routing_key, decoded.headers, also)
        header = hide_blind(header, len(body))
        ttl = ttl_of(decoded)  # 406 for an invalid expiration, before anything is enqueued
        rejected: list[str] = []
        blind = tuple(keys_of(decoded.headers, BLIND))
        for target in targets:
            message = StoredMessage(body, header, exchange, routing_key, next(self._seq))
            message.blind_keys = blind
            reply = self.topology.replies.get(target)
            if reply is not None:
                reply.receiver.receive(reply, None, message)
            elif not self.topology.queues[target].enqueue(message, ttl):
                rejected.append(target)  # full, with x-overflow reject-publish: a nack
        record = Message(
            exchange, routing_key, body, decoded, tuple(targets), rejected=tuple(rejected)
        )
        self.published.append(record)
        return record

    def dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        """``message`` died in ``queue`` for ``reason``: route it on, or drop it."""
        exchange = queue.dead_letter_exchange
        if exchange is None:
            return
        properties = message.properties
        copied = keys_of(properties.headers, "CC")
        seen_keys = [message.routing_key, *copied]
        key = dead_letter_routing_key(queue.arguments)
        blind = message.blind_keys
        if key is None:  # routed with every key it was published with (BCC's too)
            key, also = message.routing_key, [*copied, *blind]
        else:  # the queue's key alone, and the CC header goes
            also, blind = [], ()
            properties.headers = {k: v for k, v in (properties.headers or {}).items() if k != "CC"}
        properties = record_death(properties, message, queue.name, reason, seen_keys)
        try:
            targets = self.topology.destinations(exchange, key, properties.headers, also)
        except ChannelNotFoundEntity:
            log.warning("dead-letter exchange %r of queue %r does not exist", exchange, queue.name)
            return
        if reason != REJECTED:
            targets = [t for t in targets if not died_in(properties, t)]
        header = encode_properties(properties, len(message.body))
        for target in targets:
            if target in self.topology.queues:
                copy = StoredMessage(message.body, header, exchange, key, next(self._seq))
                copy.blind_keys = blind
                self.topology.queues[target].enqueue(copy, None)
