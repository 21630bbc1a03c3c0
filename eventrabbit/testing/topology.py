"""Exchanges, queues and bindings of the in-memory broker, with RabbitMQ's rules for them.

The operations raise the ``aiormq.exceptions`` errors RabbitMQ's replies become: 404
``ChannelNotFoundEntity``, 405 ``ChannelLockedResource``, 406 ``ChannelPreconditionFailed``,
403 ``ChannelAccessRefused``, and the connection error 503 ``ConnectionCommandInvalid`` for
an unknown exchange type. The channel turns them into a closed channel (or connection), as
RabbitMQ does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelLockedResource,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    ConnectionCommandInvalid,
)

from .queues import Consumer, MemoryQueue
from .routing import EXCHANGE_TYPES, Binding, route, x_match_error

#: RabbitMQ's direct reply-to pseudo-queue, and the prefix of the addresses it hands out.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_PREFIX = DIRECT_REPLY_TO + "."
#: The exchanges every RabbitMQ has, and their types.
PREDECLARED = {
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}
#: RabbitMQ's reply when something is done to the default exchange that may not be.
DEFAULT_EXCHANGE_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


@dataclass(slots=True, eq=False)
class Exchange:
    """An exchange and its bindings."""

    name: str
    type: str
    durable: bool = True
    bindings: list[Binding] = field(default_factory=list)


def _not_found(kind: str, name: str) -> ChannelNotFoundEntity:
    return ChannelNotFoundEntity(f"NOT_FOUND - no {kind} '{name}' in vhost '/'")


class Topology:
    """Exchanges, queues and bindings, with RabbitMQ's rules for declaring them."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, MemoryQueue] = {}
        self.reply_routes: dict[str, Consumer] = {}
        self.predeclare()

    def predeclare(self) -> None:
        """Add the ``amq.*`` exchanges."""
        for name, kind in PREDECLARED.items():
            self.exchanges[name] = Exchange(name, kind)

    # ------------------------------------------------------------------------ exchanges

    def declare_exchange(self, name: str, kind: str, durable: bool, passive: bool) -> None:
        """``exchange.declare``; ``passive`` only checks that it exists."""
        existing = self.exchanges.get(name)
        if passive:
            if name and existing is None:
                raise _not_found("exchange", name)
            return
        if name == "":
            raise ChannelAccessRefused(DEFAULT_EXCHANGE_REFUSED)
        if kind not in EXCHANGE_TYPES:
            raise ConnectionCommandInvalid(f"COMMAND_INVALID - unknown exchange type '{kind}'")
        if existing is None:
            if name.startswith("amq."):
                raise ChannelAccessRefused(
                    f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"
                )
            self.exchanges[name] = Exchange(name, kind, durable)
            return
        for arg, old, new in (
            ("type", existing.type, kind),
            ("durable", existing.durable, durable),
        ):
            if old != new:
                raise ChannelPreconditionFailed(
                    f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{name}' in "
                    f"vhost '/': received '{new}' but current is '{old}'"
                )

    def delete_exchange(self, name: str) -> None:
        """``exchange.delete``: the exchange and its bindings go (a missing one is fine)."""
        if name == "" or name in PREDECLARED:
            raise ChannelAccessRefused(
                f"ACCESS_REFUSED - operation not permitted on exchange '{name}'"
            )
        self.exchanges.pop(name, None)

    def bind(
        self,
        queue: str,
        exchange: str,
        key: str,
        arguments: dict[str, Any] | None,
        connection: object,
    ) -> None:
        """``queue.bind`` by ``connection`` (405 for another connection's exclusive queue)."""
        target = self._binding_target(queue, exchange)
        self.queue(queue, connection)
        if target.type == "headers" and (error := x_match_error(arguments)):
            raise ChannelPreconditionFailed(f"PRECONDITION_FAILED - {error}")
        binding = Binding(queue, key, dict(arguments) if arguments else None)
        if binding not in target.bindings:
            target.bindings.append(binding)

    def unbind(
        self,
        queue: str,
        exchange: str,
        key: str,
        arguments: dict[str, Any] | None,
        connection: object,
    ) -> None:
        """``queue.unbind`` by ``connection``.

        As in RabbitMQ, removing a binding that does not exist (or whose queue or exchange does
        not) succeeds; removing one of another connection's exclusive queue is refused (405).
        """
        if exchange == "":
            raise ChannelAccessRefused(DEFAULT_EXCHANGE_REFUSED)
        target = self.exchanges.get(exchange)
        binding = Binding(queue, key, dict(arguments) if arguments else None)
        if target is None or queue not in self.queues or binding not in target.bindings:
            return
        self.queue(queue, connection)
        target.bindings = [b for b in target.bindings if b != binding]

    def _binding_target(self, queue: str, exchange: str) -> Exchange:
        if exchange == "":
            raise ChannelAccessRefused(DEFAULT_EXCHANGE_REFUSED)
        if queue not in self.queues:
            raise _not_found("queue", queue)
        target = self.exchanges.get(exchange)
        if target is None:
            raise _not_found("exchange", exchange)
        return target

    # --------------------------------------------------------------------------- queues

    def queue(self, name: str, connection: object | None = None) -> MemoryQueue:
        """The queue named ``name``, if ``connection`` may use it."""
        queue = self.queues.get(name)
        if queue is None:
            raise _not_found("queue", name)
        if queue.exclusive_owner is not None and queue.exclusive_owner is not connection:
            raise ChannelLockedResource(
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' "
                "in vhost '/'"
            )
        return queue

    def existing_queue(
        self,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        passive: bool,
        connection: object,
    ) -> MemoryQueue | None:
        """The queue a ``queue.declare`` finds, or ``None`` when it may create ``name``."""
        if passive:
            return self.queue(name, connection)
        existing = self.queues.get(name)
        if existing is None:
            _check_new_queue(name, durable, arguments)
            return None
        self.queue(name, connection)  # 405 if another connection holds it exclusively
        mismatch = existing.mismatch(durable, auto_delete, arguments)
        if mismatch is not None:
            raise ChannelPreconditionFailed(f"PRECONDITION_FAILED - {mismatch} in vhost '/'")
        return existing

    def delete_queue(
        self,
        name: str,
        if_unused: bool = False,
        if_empty: bool = False,
        *,
        by: object | None = None,
    ) -> int:
        """``queue.delete``: returns the ready messages dropped; its consumers are cancelled.

        :param by: the client connection that asks, refused (405) if another connection holds
            the queue exclusively; ``None``: the broker itself (auto-delete, owner gone).
        """
        queue = self.queues.get(name)
        if queue is None:
            return 0
        if by is not None:
            self.queue(name, by)
        for refused, why in (
            (if_unused and queue.consumers, "in use"),
            (if_empty and queue.ready, "not empty"),
        ):
            if refused:
                raise ChannelPreconditionFailed(
                    f"PRECONDITION_FAILED - queue '{name}' in vhost '/' {why}"
                )
        count = len(queue.ready)
        del self.queues[name]
        for exchange in self.exchanges.values():
            exchange.bindings = [b for b in exchange.bindings if b.queue != name]
        consumers = list(queue.consumers)
        queue.close()
        for consumer in consumers:
            consumer.receiver.cancel_by_broker(consumer)
        return count

    def purge_queue(self, name: str, connection: object) -> int:
        """``queue.purge`` by ``connection``: drop the ready messages, return how many."""
        return self.queue(name, connection).purge()

    def add_reply_route(self, consumer: Consumer) -> str:
        """Register a direct reply-to consumer; returns its ``reply_to`` address."""
        address = REPLY_PREFIX + secrets.token_urlsafe(24)
        self.reply_routes[address] = consumer
        return address

    def remove_consumer(self, consumer: Consumer) -> None:
        """Forget a consumer; an auto-delete queue goes with its last one."""
        queue = consumer.queue
        if queue is None:
            self.reply_routes = {a: c for a, c in self.reply_routes.items() if c is not consumer}
            return
        if consumer in queue.consumers:
            queue.consumers.remove(consumer)
        if queue.auto_delete and not queue.consumers and not queue.deleted:
            self.delete_queue(queue.name)

    def destinations(self, exchange: str, key: str, headers: dict[str, Any] | None) -> list[str]:
        """Where a message published to ``exchange`` with ``key`` goes (queues or a reply)."""
        if exchange == "":
            if key.startswith(REPLY_PREFIX):
                return [key] if key in self.reply_routes else []
            return [key] if key in self.queues else []
        target = self.exchanges.get(exchange)
        if target is None:
            raise _not_found("exchange", exchange)
        return route(target.type, target.bindings, key, headers)


def _check_new_queue(name: str, durable: bool, arguments: dict[str, Any]) -> None:
    """Refuse a queue RabbitMQ would not create."""
    if name.startswith("amq."):
        raise ChannelAccessRefused(
            f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"
        )
    if arguments.get("x-queue-type") == "quorum" and not durable:
        raise ChannelPreconditionFailed(
            f"PRECONDITION_FAILED - invalid property 'non-durable' for queue '{name}'"
        )
