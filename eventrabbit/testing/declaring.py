"""The declaring half of the in-memory channel: exchanges, queues and bindings.

Each method asks the broker; an error RabbitMQ would answer with closes the channel (or, for
a connection error, the connection) with the matching ``aiormq.exceptions`` error, which the
call raises — as aiormq does. A closed channel raises ``ChannelInvalidStateError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiormq.exceptions import AMQPChannelError, AMQPConnectionError, ChannelInvalidStateError
from pamqp import commands as spec

from .broker import MemoryBroker
from .lifecycle import Closable
from .queues import MemoryQueue

if TYPE_CHECKING:
    from .transport import MemoryConnection


class DeclaringChannel(Closable):
    """Channel methods that declare, bind and delete; the base of ``MemoryChannel``."""

    def __init__(self, connection: MemoryConnection, number: int) -> None:
        super().__init__(connection.loop)
        self.connection = connection
        self.broker: MemoryBroker = connection.broker
        self.number = number

    def __str__(self) -> str:
        return str(self.number)

    def __repr__(self) -> str:
        return f'<MemoryChannel: "{self.number}" of {self.broker.url}>'

    def shutdown(self, reason: BaseException) -> None:
        """Close now, for ``reason``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state and errors

    def _check_open(self) -> None:
        if self.is_closed:
            raise ChannelInvalidStateError(f"{self!r} closed")

    def _fail(self, exc: Exception) -> Exception:
        """Close the channel (or the connection, for a connection error) because of ``exc``."""
        if isinstance(exc, AMQPConnectionError):
            self.connection.shutdown(exc)
        else:
            self.shutdown(exc)
        return exc

    def _broker_call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        try:
            return method(*args, **kwargs)
        except (AMQPChannelError, AMQPConnectionError) as exc:
            raise self._fail(exc) from None

    # ------------------------------------------------------------------------ declaring

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
        self._broker_call(self.broker.declare_exchange, exchange, exchange_type, durable, passive)
        return spec.Exchange.DeclareOk()

    async def exchange_delete(
        self, exchange: str = "", *, if_unused: bool = False, nowait: bool = False
    ) -> spec.Exchange.DeleteOk:
        """Delete an exchange and its bindings."""
        self._broker_call(self.broker.delete_exchange, exchange)
        return spec.Exchange.DeleteOk()

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
        owner = self.connection if exclusive else None
        declared: MemoryQueue = self._broker_call(
            self.broker.declare_queue, queue, durable, auto_delete, arguments or {}, passive, owner,
            self.connection,
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
        """Bind ``queue`` to ``exchange``."""
        self._broker_call(
            self.broker.bind, queue, exchange, routing_key, arguments, self.connection
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
        self._broker_call(
            self.broker.unbind, queue, exchange, routing_key, arguments, self.connection
        )
        return spec.Queue.UnbindOk()

    async def queue_delete(
        self, queue: str = "", if_unused: bool = False, if_empty: bool = False
    ) -> spec.Queue.DeleteOk:
        """Delete a queue; its consumers are cancelled (``on_consumer_cancel_callbacks``)."""
        count: int = self._broker_call(
            self.broker.delete_queue, queue, if_unused, if_empty, by=self.connection
        )
        return spec.Queue.DeleteOk(message_count=count)

    async def queue_purge(self, queue: str = "") -> spec.Queue.PurgeOk:
        """Drop a queue's ready messages."""
        count: int = self._broker_call(self.broker.purge_queue, queue, self.connection)
        return spec.Queue.PurgeOk(message_count=count)
