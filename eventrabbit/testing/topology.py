"""The topology of the in-memory broker: its exchanges, queues, the bindings between them and
the direct reply-to addresses — with RabbitMQ's rules for declaring, binding and deleting.

Each operation raises the ``aiormq.exceptions`` error RabbitMQ's reply becomes
(:mod:`.refusals`); the channel that asked turns it into a closed channel (or connection).
An exclusive queue belongs to the connection that declared it: another connection that uses
it gets 405, and it is deleted when its connection closes. Connections are only compared by
identity here, so they are plain ``object`` s.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from .changes import Changes
from .exchanges import Exchanges
from .queues import Consumer, DeadLetterHook, MemoryQueue
from .refusals import (
    TRANSIENT_NONEXCL_QUEUES,
    default_exchange_refused,
    deprecated,
    locked,
    not_found,
    precondition_failed,
    reserved,
)
from .reply_to import ReplyRoutes
from .routing import Binding, x_match_error
from .streams import attach_log, stream_refusal


class Topology:
    """Exchanges, queues, bindings and direct reply-to addresses of one broker.

    :param changes: fired when a queue is declared or deleted (the queues fire it too).
    :param on_dead: where the queues send their dying messages.
    """

    def __init__(self, changes: Changes, on_dead: DeadLetterHook) -> None:
        self.changes = changes
        self.on_dead = on_dead
        self.exchanges = Exchanges()
        self.queues: dict[str, MemoryQueue] = {}
        self.replies = ReplyRoutes()
        #: Deprecated features refused as RabbitMQ 4.3 refuses them (see ``refusals``).
        self.denied: set[str] = set()

    def clear(self) -> None:
        """Forget every queue, exchange and reply address; only the ``amq.*`` exchanges stay."""
        for queue in list(self.queues.values()):
            queue.close()
        self.queues.clear()
        self.exchanges.clear()
        self.replies.routes.clear()
        self.changes.fire()

    # ------------------------------------------------------------------------- bindings

    def bind(
        self, queue: str, exchange: str, key: str, arguments: dict[str, Any] | None, by: object
    ) -> None:
        """``queue.bind`` by connection ``by``."""
        if exchange == "":
            raise default_exchange_refused()
        if queue not in self.queues:
            raise not_found("queue", queue)
        target = self.exchanges.get(exchange)
        self.queue(queue, by)  # 405 for another connection's exclusive queue
        if target.type == "headers" and (error := x_match_error(arguments)):
            raise precondition_failed(error)
        binding = Binding(queue, key, dict(arguments) if arguments else None)
        if binding not in target.bindings:
            target.bindings.append(binding)

    def unbind(
        self, queue: str, exchange: str, key: str, arguments: dict[str, Any] | None, by: object
    ) -> None:
        """``queue.unbind`` by connection ``by``.

        As in RabbitMQ, removing a binding that does not exist (or whose queue or exchange does
        not) succeeds; removing one of another connection's exclusive queue is refused (405).
        """
        if exchange == "":
            raise default_exchange_refused()
        target = self.exchanges.by_name.get(exchange)
        binding = Binding(queue, key, dict(arguments) if arguments else None)
        if target is None or queue not in self.queues or binding not in target.bindings:
            return
        self.queue(queue, by)
        target.bindings = [b for b in target.bindings if b != binding]

    def destinations(
        self,
        exchange: str,
        key: str,
        headers: dict[str, Any] | None,
        also: Sequence[str] = (),
    ) -> list[str]:
        """Where a message published to ``exchange`` with ``key`` (and the routing keys
        ``also``, its ``CC``/``BCC`` ones) goes: queues, or reply addresses; each once.

        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        """
        keys = [key, *also]
        if exchange == "":
            found = (
                k
                for k in keys
                if k in (self.replies.routes if self.replies.is_address(k) else self.queues)
            )
            return list(dict.fromkeys(found))
        return self.exchanges.route(exchange, keys, headers)

    # --------------------------------------------------------------------------- queues

    def queue(self, name: str, by: object | None = None) -> MemoryQueue:
        """The queue named ``name``, if connection ``by`` may use it."""
        queue = self.queues.get(name)
        if queue is None:
            raise not_found("queue", name)
        if queue.exclusive_owner is not None and queue.exclusive_owner is not by:
            raise locked(name)
        return queue

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        passive: bool,
        exclusive: bool,
        by: object,
    ) -> MemoryQueue:
        """``queue.declare`` by connection ``by``: the existing queue if it is equivalent,
        else a new one (``""``: a server-named one)."""
        if passive:
            return self.queue(name, by)
        if not name:
            name = f"amq.gen-{secrets.token_urlsafe(16)}"
        elif (existing := self.queues.get(name)) is not None:
            self.queue(name, by)  # 405 if another connection holds it exclusively
            mismatch = existing.mismatch(durable, auto_delete, arguments)
            if mismatch is not None:
                raise precondition_failed(f"{mismatch} in vhost '/'")
            return existing
        elif name.startswith("amq."):
            raise reserved("queue", name)
        elif arguments.get("x-queue-type") == "stream":
            if (refusal := stream_refusal(name, durable, exclusive, auto_delete)) is not None:
                raise precondition_failed(refusal)
        elif not durable and not exclusive and TRANSIENT_NONEXCL_QUEUES in self.denied:
            raise deprecated(TRANSIENT_NONEXCL_QUEUES)
        elif arguments.get("x-queue-type") == "quorum" and not durable:
            raise precondition_failed(f"invalid property 'non-durable' for queue '{name}'")
        owner = by if exclusive else None
        queue = MemoryQueue(
            name, durable, dict(arguments), self.on_dead, self.changes, owner, auto_delete
        )
        if arguments.get("x-queue-type") == "stream":
            attach_log(queue)  # its log consumes it: see .streams
        self.queues[name] = queue
        self.changes.fire()
        return queue

    def delete_queue(
        self, name: str, if_unused: bool = False, if_empty: bool = False, *, by: object | None
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
                raise precondition_failed(f"queue '{name}' in vhost '/' {why}")
        count = len(queue.ready)
        del self.queues[name]
        self.exchanges.unbind_queue(name)
        consumers = list(queue.consumers)
        queue.close()
        for consumer in consumers:
            consumer.receiver.cancel_by_broker(consumer)
        return count

    def delete_exclusive(self, owner: object) -> None:
        """``owner`` closed: its exclusive queues go with it."""
        for queue in list(self.queues.values()):
            if queue.exclusive_owner is owner:
                self.delete_queue(queue.name, by=None)

    def purge_queue(self, name: str, by: object) -> int:
        """``queue.purge`` by connection ``by``: drop the ready messages, return how many."""
        return self.queue(name, by).purge()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Forget a queue's consumer; an auto-delete queue goes with its last one."""
        queue = consumer.queue
        if queue is None:
            return  # a reply consumer: its channel's ChannelReplyTo forgets it
        queue.remove_consumer(consumer)
        if queue.auto_delete and not queue.consumers and not queue.deleted:
            self.delete_queue(queue.name, by=None)

    def next_deadline(self) -> float | None:
        """Expire what is due in every queue; then: when the next ready message expires."""
        deadlines = []
        for queue in list(self.queues.values()):
            queue.expire_due()
            if queue.expiry.next_deadline is not None:
                deadlines.append(queue.expiry.next_deadline)
        return min(deadlines, default=None)
