"""Direct reply-to, RabbitMQ's ``amq.rabbitmq.reply-to`` pseudo-queue: the broker's reply
addresses (:class:`ReplyRoutes`) and a channel's reply consumer (:class:`ChannelReplyTo`).

Theory of operation
-------------------
A channel consumes ``amq.rabbitmq.reply-to`` — with ``no_ack``, at most once — and the broker
gives that consumer an address of its own, ``amq.rabbitmq.reply-to.<random>``. When the
channel publishes with ``reply_to`` set to the pseudo-queue, the address is put there instead.
A message published to the default exchange with the address as routing key goes straight to
the consumer, through no queue; the address lives as long as the consumer. Breaking a rule
is a 406 ``PRECONDITION_FAILED`` that closes the channel, as in RabbitMQ.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

from pamqp import commands as spec

from ..topology import DIRECT_REPLY_TO
from .queues import Consumer, Receiver
from .refusals import precondition_failed

#: The prefix of the addresses direct reply-to hands out.
REPLY_PREFIX = DIRECT_REPLY_TO + "."


class ReplyRoutes:
    """The broker's direct reply-to addresses and the consumers they lead to."""

    def __init__(self) -> None:
        self.routes: dict[str, Consumer] = {}

    def add(self, consumer: Consumer) -> str:
        """Give a reply consumer an address; returns it."""
        address = REPLY_PREFIX + secrets.token_urlsafe(24)
        self.routes[address] = consumer
        return address

    def remove(self, consumer: Consumer) -> None:
        """The consumer stopped: its address leads nowhere now."""
        self.routes = {a: c for a, c in self.routes.items() if c is not consumer}

    def get(self, address: str) -> Consumer | None:
        """The consumer at ``address``, if it is one."""
        return self.routes.get(address)

    @staticmethod
    def is_address(routing_key: str) -> bool:
        """Whether a default-exchange routing key is a reply address (rather than a queue)."""
        return routing_key.startswith(REPLY_PREFIX)


class ChannelReplyTo:
    """One channel's reply consumer and its address."""

    def __init__(self, routes: ReplyRoutes) -> None:
        self.routes = routes
        #: The address of the channel's reply consumer, if it has one.
        self.address: str | None = None

    def consumer(
        self, tag: str, receiver: Receiver, callback: Callable[..., Any], no_ack: bool
    ) -> Consumer:
        """Start the channel's reply consumer.

        :raises aiormq.exceptions.ChannelPreconditionFailed: it acks, or there is one already.
        """
        if not no_ack:
            raise precondition_failed("reply consumer cannot acknowledge")
        if self.address is not None:
            raise precondition_failed("reply consumer already set")
        consumer = Consumer(tag, receiver, callback, None, no_ack=True)
        self.address = self.routes.add(consumer)
        return consumer

    def stamp(self, properties: spec.Basic.Properties) -> spec.Basic.Properties:
        """A copy of ``properties`` with the pseudo-queue in ``reply_to`` replaced by the address.

        :raises aiormq.exceptions.ChannelPreconditionFailed: the channel has no reply consumer.
        """
        if self.address is None:
            raise precondition_failed("fast reply consumer does not exist")
        properties = copy.copy(properties)  # the caller's object is left as it was
        properties.reply_to = self.address
        return properties

    def cancel(self, consumer: Consumer) -> None:
        """The reply consumer stopped (cancelled, or its channel closed)."""
        self.routes.remove(consumer)
        self.address = None
