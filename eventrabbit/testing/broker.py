"""The in-memory broker as tests see it: publishing, looking into queues, and waiting.

A :class:`MemoryBroker` is made of parts: its :class:`~.topology.Topology` (exchanges,
queues, bindings, reply addresses), its :class:`~.flow.MessageFlow` (publishing,
dead-lettering), its :class:`~.connections.Connections`, and :class:`~.changes.Changes`, the
notification its queues fire on every change. The waits (:meth:`MemoryBroker.wait_idle`,
:meth:`MemoryBroker.wait_for_messages`) look at the state, and wait for the next change or
the next message expiry when it is not there yet — they never poll.
"""

from __future__ import annotations

import copy
from typing import Any

from aiormq.exceptions import ChannelNotFoundEntity
from pamqp import commands as spec

from ..confirm import event_properties
from ..errors import PublishError, UnroutableError
from .changes import Changes
from .connections import Connections
from .exchanges import Exchange
from .flow import MessageFlow
from .messages import Message, StoredMessage, body_of
from .queues import MemoryQueue
from .refusals import DEPRECATED_FEATURES
from .routing import Binding
from .topology import Topology

#: The scheme of in-memory broker URLs.
SCHEME = "memory"


class MemoryBroker:
    """A RabbitMQ broker in memory, for tests.

    Connect eventrabbit to it with its :attr:`url` (``build_event_dependencies(broker.url)``
    and ``ConsumeChannel(broker.url, ...)``), or send ``amqp://`` connections to it with
    :func:`eventrabbit.testing.redirect_amqp`. Then look at what happened:
    :meth:`messages` of a queue, :attr:`published`, :meth:`queue_depth`; wait with
    :meth:`wait_for_messages` and :meth:`wait_idle`.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.changes = Changes()
        self.topology = Topology(self.changes, on_dead=self._dead_letter)
        self.flow = MessageFlow(self.topology)
        self.connections = Connections(self.topology, self.changes)

    def __repr__(self) -> str:
        return f"<MemoryBroker {self.url}>"

    def _dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        # The topology makes queues before the flow that routes their dead messages exists.
        self.flow.dead_letter(queue, message, reason)

    @property
    def url(self) -> str:
        """The URL that connects to this broker: ``memory://<name>``."""
        return f"{SCHEME}://{self.name}"

    @property
    def published(self) -> list[Message]:
        """Every message published, by a client or by :meth:`publish`, in order: each a
        :class:`~eventrabbit.testing.Message` whose ``queues`` says where it went."""
        return self.flow.published

    @property
    def queues(self) -> dict[str, MemoryQueue]:
        """The queues by name (the topology's own dict)."""
        return self.topology.queues

    @property
    def exchanges(self) -> dict[str, Exchange]:
        """The exchanges by name (the topology's own dict)."""
        return self.topology.exchanges.by_name

    # ------------------------------------------------------------------------ publishing

    def publish(
        self,
        body: Any,
        exchange: str = "",
        routing_key: str = "",
        *,
        action: str | None = None,
        properties: spec.Basic.Properties | None = None,
        headers: dict[str, Any] | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        mandatory: bool = False,
    ) -> Message:
        """Publish as a client would; returns the :class:`Message`, whose ``queues`` it reached.

        :param body: with ``action``: the event's ``data``, sent as
            ``{"action": action, "data": body}``. Without: ``bytes`` go as they are (a raw,
            possibly broken body); a ``str`` as UTF-8; anything else as JSON.
        :param exchange: ``""`` is the default exchange: ``routing_key`` names the queue.
        :param properties: AMQP properties; default: eventrabbit's (JSON, persistent, a
            message id and a timestamp). ``headers``, ``reply_to`` and ``correlation_id``
            are set on them.
        :raises PublishError: the exchange does not exist.
        :raises UnroutableError: ``mandatory`` and no queue received it.
        """
        properties = copy.copy(properties) if properties else event_properties()
        for name, value in (
            ("headers", headers),
            ("reply_to", reply_to),
            ("correlation_id", correlation_id),
        ):
            if value is not None:
                setattr(properties, name, value)
        self.connections.prune()
        try:
            message = self.flow.publish(exchange, routing_key, body_of(body, action), properties)
        except ChannelNotFoundEntity:
            raise PublishError(
                f"exchange {exchange!r} does not exist on {self.url}", exchange=exchange
            ) from None
        if mandatory and not message.queues:
            raise UnroutableError(
                f"no queue is bound to exchange {exchange!r} for routing key {routing_key!r}",
                exchange=exchange,
                routing_key=routing_key,
            )
        return message

    # ------------------------------------------------------------------------- looking

    def messages(self, queue: str) -> list[Message]:
        """The ready messages of ``queue``, oldest first, left in the queue.

        Messages delivered to a consumer and not yet acked are not among them.

        :raises LookupError: no such queue.
        """
        found = self._existing(queue)
        found.expire_due()
        return [Message.of(message) for message in found.ready]

    def queue_depth(self, queue: str) -> int:
        """How many messages ``queue`` holds ready (not counting unacked ones)."""
        found = self._existing(queue)
        found.expire_due()
        return len(found.ready)

    def unacked_count(self, queue: str) -> int:
        """How many messages of ``queue`` consumers hold and have not acked yet."""
        return self._existing(queue).unacked

    def consumer_count(self, queue: str) -> int:
        """How many consumers ``queue`` has."""
        return len(self._existing(queue).consumers)

    @property
    def queues_declared(self) -> list[str]:
        """The names of the queues that exist, sorted."""
        return sorted(self.topology.queues)

    def bindings(self, exchange: str) -> list[Binding]:
        """The bindings of ``exchange`` (queue, routing key, arguments), in order.

        :raises LookupError: no such exchange.
        """
        found = self.topology.exchanges.by_name.get(exchange)
        if found is None:
            raise LookupError(f"no exchange {exchange!r} on {self.url}")
        return list(found.bindings)

    def _existing(self, queue: str) -> MemoryQueue:
        found = self.topology.queues.get(queue)
        if found is None:
            raise LookupError(f"no queue {queue!r} on {self.url}")
        return found

    # ------------------------------------------------------------------------- waiting

    async def wait_for_messages(
        self,
        queue: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (a deadline)
    ) -> list[Message]:
        """Wait until ``queue`` holds at least ``count`` ready messages; return them.

        ``queue`` need not exist yet.

        :raises TimeoutError: they did not arrive within ``timeout`` seconds.
        """

        def arrived() -> bool:
            return queue in self.topology.queues and self.queue_depth(queue) >= count

        await self.changes.until(arrived, self._catch_up, timeout)
        return self.messages(queue)

    async def wait_idle(
        self,
        *queues: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (a deadline)
    ) -> None:
        """Wait until the queues hold nothing ready and nothing unacked: all handled.

        :param queues: the queues to watch; default: every queue that has a consumer.
        :raises LookupError: one of ``queues`` does not exist (or was deleted meanwhile).
        :raises TimeoutError: they were still busy after ``timeout`` seconds.
        """

        def idle() -> bool:
            watched = [self._existing(name) for name in queues] or [
                q for q in self.topology.queues.values() if q.consumers
            ]
            return all(not queue.ready and not queue.unacked for queue in watched)

        await self.changes.until(idle, self._catch_up, timeout)

    def _catch_up(self) -> float | None:
        # Before each look: a dead loop's consumers hold nothing any more, and what is due
        # expires everywhere (it may be on its way to the queue waited on).
        self.connections.prune()
        return self.topology.next_deadline()

    # --------------------------------------------------------------------- connections

    @property
    def connection_count(self) -> int:
        """Open connections to this broker (those of an event loop that ended are closed)."""
        self.connections.prune()
        return len(self.connections)

    def drop_connections(self) -> None:
        """Close every connection as a broker restart would: clients see the connection lost.

        Unacked messages go back to their queues; eventrabbit's consumers reconnect.
        """
        self.connections.drop_all()

    def deny(self, *features: str) -> None:
        """Refuse deprecated features as RabbitMQ 4.3 does by default:
        ``"transient_nonexcl_queues"`` (a non-durable, non-exclusive queue's declare closes the
        connection, 541) and ``"global_qos"`` (``basic.qos`` with ``global``)."""
        unknown = set(features) - DEPRECATED_FEATURES
        if unknown:
            raise ValueError(f"not a deprecated feature: {sorted(unknown)}")
        self.topology.denied.update(features)

    def reset(self) -> None:
        """Drop every connection and forget every queue, exchange and published message."""
        self.drop_connections()
        self.topology.clear()
        self.flow.published.clear()
