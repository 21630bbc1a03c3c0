"""The in-memory broker as tests see it: publishing, looking into queues, waiting, and
brokers by name.

One :class:`MemoryBroker` per name — the host of a ``memory://<name>`` URL, ``""`` for
``memory://`` — and process: every connection to that URL shares it (:func:`get_broker`).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
from aiormq.exceptions import ChannelNotFoundEntity, ConnectionClosed
from pamqp import commands as spec
from yarl import URL

from .. import envelope
from ..confirm import event_properties
from ..errors import ConfigurationError, PublishError, UnroutableError
from .flow import MessageFlow
from .messages import Message
from .queues import MemoryQueue
from .routing import Binding

#: The scheme of in-memory broker URLs.
SCHEME = "memory"
#: How often the ``wait_*`` helpers look again, in seconds.
POLL_INTERVAL = 0.002
#: How a broker closes a connection it drops (as RabbitMQ on shutdown).
CONNECTION_FORCED = "CONNECTION_FORCED - broker forced connection closure"


class MemoryBroker(MessageFlow):
    """A RabbitMQ broker in memory, for tests.

    Connect eventrabbit to it with its :attr:`url` (``build_event_dependencies(broker.url)``
    and ``ConsumeChannel(broker.url, ...)``), or send ``amqp://`` connections to it with
    :func:`eventrabbit.testing.redirect_amqp`. Then look at what happened:
    :meth:`messages` of a queue, :attr:`published`, :meth:`queue_depth`; wait with
    :meth:`wait_for_messages` and :meth:`wait_idle`.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name = name

    def __repr__(self) -> str:
        return f"<MemoryBroker {self.url}>"

    @property
    def url(self) -> str:
        """The URL that connects to this broker: ``memory://<name>``."""
        return f"{SCHEME}://{self.name}"

    # ------------------------------------------------------------------- for tests

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
        try:
            message = self.publish_message(
                exchange, routing_key, _as_body(body, action), properties
            )
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
        return sorted(self.queues)

    def bindings(self, exchange: str) -> list[Binding]:
        """The bindings of ``exchange`` (queue, routing key, arguments), in order.

        :raises LookupError: no such exchange.
        """
        if exchange not in self.exchanges:
            raise LookupError(f"no exchange {exchange!r} on {self.url}")
        return list(self.exchanges[exchange].bindings)

    async def wait_for_messages(
        self,
        queue: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 (a deadline)
    ) -> list[Message]:
        """Wait until ``queue`` holds at least ``count`` ready messages; return them.

        :raises TimeoutError: they did not arrive within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self.queues.get(queue) or self.queue_depth(queue) < count:  # noqa: ASYNC110
                await asyncio.sleep(POLL_INTERVAL)
        return self.messages(queue)

    async def wait_idle(
        self,
        *queues: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (a deadline)
    ) -> None:
        """Wait until the queues hold nothing ready and nothing unacked: all handled.

        :param queues: the queues to watch; default: every queue that has a consumer.
        :raises TimeoutError: they were still busy after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self._idle(queues):  # noqa: ASYNC110 (polls state that has no event)
                await asyncio.sleep(POLL_INTERVAL)

    def _idle(self, names: tuple[str, ...]) -> bool:
        queues = [self._existing(n) for n in names] or [
            q for q in self.queues.values() if q.consumers
        ]
        for queue in queues:
            queue.expire_due()
        return all(not queue.ready and not queue.unacked for queue in queues)

    @property
    def connection_count(self) -> int:
        """Open connections to this broker (those of an event loop that ended are closed)."""
        self.prune()
        return len(self.connections)

    def drop_connections(self) -> None:
        """Close every connection as a broker restart would: clients see the connection lost.

        Unacked messages go back to their queues; eventrabbit's consumers reconnect.
        """
        for connection in list(self.connections):
            connection.shutdown(ConnectionClosed(320, CONNECTION_FORCED))

    def reset(self) -> None:
        """Drop every connection and forget every queue, exchange and published message."""
        self.drop_connections()
        for queue in list(self.queues.values()):
            queue.close()
        self.queues.clear()
        self.exchanges.clear()
        self.reply_routes.clear()
        self.published.clear()
        self.predeclare()

    def _existing(self, queue: str) -> MemoryQueue:
        found = self.queues.get(queue)
        if found is None:
            raise LookupError(f"no queue {queue!r} on {self.url}")
        return found


def _as_body(body: Any, action: str | None) -> bytes:
    if action is not None:
        return envelope.encode(action, body)
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


# ------------------------------------------------------------------------ brokers by name

_BROKERS: dict[str, MemoryBroker] = {}


def broker_name(url: str) -> str:
    """The broker name in a ``memory://<name>`` URL (``""`` for ``memory://``).

    :raises ConfigurationError: not a ``memory://`` URL.
    """
    parsed = URL(url)
    if parsed.scheme != SCHEME:
        raise ConfigurationError(f"{url!r} is not a memory:// URL")
    return parsed.host or ""


def get_broker(url: str = "memory://") -> MemoryBroker:
    """The broker a ``memory://<name>`` URL connects to, made on first use."""
    name = broker_name(url)
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(name)
    return broker


def forget_broker(broker: MemoryBroker) -> None:
    """Reset ``broker`` and forget its name: the next connection to it gets a fresh one."""
    broker.reset()
    if _BROKERS.get(broker.name) is broker:
        del _BROKERS[broker.name]
