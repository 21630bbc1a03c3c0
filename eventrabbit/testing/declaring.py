"""Declaring through an in-memory channel: aiormq's ``exchange_*`` and ``queue_*`` methods,
answered by the broker's topology.

A :class:`Declaring` belongs to one channel and acts for its connection (which exclusive
queues it may use). Each call goes through the channel's :class:`~.guard.Guard`: an error
RabbitMQ would answer with closes the channel (or the connection) and is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pamqp import commands as spec

from .guard import Guard
from .topology import Topology
from .wire_arguments import as_sent, check_parsable


class Declaring:
    """The declaring methods of one channel.

    :param by: the channel's connection, which owns the exclusive queues it declares.
    :param guard: the channel's guard, which every call goes through.
    """

    def __init__(self, topology: Topology, by: object, guard: Guard) -> None:
        self.topology = topology
        self.by = by
        self.guard = guard

    def _sent(
        self,
        arguments: dict[str, Any] | None,
        act: Callable[[dict[str, Any]], object],
        routing_key: str = "",
    ) -> None:
        """Run ``act`` on ``arguments`` as they went over the wire, through the guard.

        What aiormq refuses before sending (an argument pamqp cannot encode, a routing key
        over 255 bytes) raises here with the channel open; what RabbitMQ cannot parse is
        refused before anything else, as RabbitMQ parses the frame first.
        """
        self.guard.check_open()
        if len(routing_key) > 255:
            raise ValueError("Routing key too long (max 255 bytes)")
        sent = as_sent(arguments)

        def call() -> None:
            check_parsable(sent)
            act(sent)

        self.guard(call)

    async def exchange_declare(
        self,
        exchange: str = "",
        *,
        exchange_type: str = "direct",
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> spec.Exchange.DeclareOk:
        """Declare an exchange (``passive``: check that it exists)."""
        declare = self.topology.exchanges.declare
        self._sent(
            arguments,
            lambda sent: declare(exchange, exchange_type, durable, passive, sent, internal),
        )
        return spec.Exchange.DeclareOk()

    async def exchange_delete(
        self, exchange: str = "", *, if_unused: bool = False, nowait: bool = False
    ) -> spec.Exchange.DeleteOk:
        """Delete an exchange and its bindings."""
        self.guard(self.topology.exchanges.delete, exchange)
        return spec.Exchange.DeleteOk()

    async def exchange_bind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        *,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
    ) -> spec.Exchange.BindOk:
        """Bind exchange ``destination`` to exchange ``source``, with ``arguments`` as they
        went over the wire (as :meth:`queue_bind`)."""
        bind = self.topology.exchanges.bind
        self._sent(
            arguments,
            lambda sent: bind(destination, source, routing_key, sent or None),
            routing_key,
        )
        return spec.Exchange.BindOk()

    async def exchange_unbind(
        self,
        destination: str = "",
        source: str = "",
        routing_key: str = "",
        *,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (aiormq's signature; nothing waits)
    ) -> spec.Exchange.UnbindOk:
        """Remove an exchange binding (one that does not exist is fine)."""
        unbind = self.topology.exchanges.unbind
        self._sent(
            arguments,
            lambda sent: unbind(destination, source, routing_key, sent or None),
            routing_key,
        )
        return spec.Exchange.UnbindOk()

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        nowait: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.DeclareOk:
        """Declare a queue (``passive``: check that it exists); ``""`` gets a generated name."""
        declared = self.guard(
            self.topology.declare_queue, queue, durable=durable, auto_delete=auto_delete,
            arguments=arguments or {}, passive=passive, exclusive=exclusive, by=self.by,
        )  # fmt: skip
        return spec.Queue.DeclareOk(
            queue=declared.name,
            message_count=len(declared.ready),
            consumer_count=len(declared.consumers),
        )

    async def queue_bind(
        self,
        queue: str = "",
        exchange: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.BindOk:
        """Bind ``queue`` to ``exchange``, with ``arguments`` as they went over the wire
        (:mod:`.wire_arguments`: pamqp's ``TypeError`` leaves the channel open, as in aiormq)."""
        bind = self.topology.bind
        self._sent(
            arguments, lambda sent: bind(queue, exchange, routing_key, sent or None, self.by)
        )
        return spec.Queue.BindOk()

    async def queue_unbind(
        self,
        queue: str = "",
        exchange: str = "",
        routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> spec.Queue.UnbindOk:
        """Remove a binding (one that does not exist is fine)."""
        self.guard(self.topology.unbind, queue, exchange, routing_key, arguments, self.by)
        return spec.Queue.UnbindOk()

    async def queue_delete(
        self, queue: str = "", if_unused: bool = False, if_empty: bool = False
    ) -> spec.Queue.DeleteOk:
        """Delete a queue; its consumers are cancelled (``on_consumer_cancel_callbacks``)."""
        count = self.guard(self.topology.delete_queue, queue, if_unused, if_empty, by=self.by)
        return spec.Queue.DeleteOk(message_count=count)

    async def queue_purge(self, queue: str = "") -> spec.Queue.PurgeOk:
        """Drop a queue's ready messages."""
        count = self.guard(self.topology.purge_queue, queue, self.by)
        return spec.Queue.PurgeOk(message_count=count)
