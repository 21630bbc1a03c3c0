"""Confirmed publishing of events: every publish returns only after the broker took the message.

The :class:`Publisher` of an ``events`` owns one connection and one confirm-mode channel. It
opens them on the first publish, closes the connection after ``idle_timeout`` seconds without a
publish (never while one is in flight) and reopens it on the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiormq
import aiormq.abc
from pamqp import commands as spec

from . import envelope
from .confirm import DEFAULT_PUBLISH_TIMEOUT, event_properties, publish_confirmed
from .connection import backoff, close_connection
from .deadlines import Deadlines
from .errors import (
    AccessRefused,
    BrokerUnavailable,
    ChannelLost,
    PublishError,
    PublishTimeout,
    UnroutableError,
)
from .fanout import HookSet
from .observed import ConnectionRole, Outcome, Publish, PublishKind
from .own_channel import OwnChannel

log = logging.getLogger(__name__)


class Publisher:
    """Publishes events on a connection of its own, closed when idle.

    A publish has ``publish_timeout`` seconds in all. Within them it waits for a connection
    (during an outage, with backoff) and sends again — with the same ``message_id`` — a message
    whose confirm was lost with its connection. It returns only when the broker confirmed, and
    raises :class:`PublishError` or :class:`PublishTimeout` otherwise.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        idle_timeout: float | None = 300,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        hooks: HookSet | None = None,
    ) -> None:
        role = ConnectionRole.PUBLISHER
        told = None if hooks is None else hooks.own_connection(role, url)
        self.channel = OwnChannel(url, on_connect=self._arm_idle_timer, on_change=told)
        self._hooks = hooks
        self.idle_timeout = idle_timeout
        self.publish_timeout = publish_timeout
        #: Events that reached no queue since start (warned about, not raised).
        self.unroutable_count = 0
        self._in_flight = 0
        self._last_used = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._deadlines: Deadlines | None = None  # the confirm timeouts' one timer

    @property
    def connected(self) -> bool:
        """Whether the publishing connection is open now."""
        return self.channel.connected

    async def publish_event(
        self,
        exchange: str,
        action: str,
        data: Any,
        *,
        routing_key: str = "",
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Publish ``{"action": action, "data": data}``; returns the message id.

        :raises PublishError: the broker did not take it (see :func:`publish_confirmed`).
        :raises UnroutableError: ``mandatory`` and no queue received it.
        """
        properties = event_properties(headers=headers)
        message_id = str(properties.message_id)
        sending = self.publish(
            envelope.encode(action, data),
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=mandatory,
        )
        if self._hooks is not None:
            publish = Publish(
                PublishKind.EVENT,
                exchange,
                routing_key,
                action,
                message_id,
                None,
                *self.channel.server,
            )
            await self._hooks.published(publish, properties, sending)
        else:
            await sending
        return message_id

    async def publish(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        properties: spec.Basic.Properties,
        mandatory: bool = False,
    ) -> bool:
        """Publish a raw body with a confirm; see :meth:`publish_event`.

        :returns: whether a queue received it (``False``: unroutable, warned about).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        delays = backoff(0.1, 2.0)
        deadlines = self._deadlines = Deadlines.on(self._deadlines)
        self._in_flight += 1
        try:
            while True:
                try:
                    channel = self.channel.open_channel
                    if channel is None:
                        channel = await self._channel_before(
                            deadline, exchange, routing_key, properties
                        )
                    # Always mandatory on the wire, so unroutable events are noticed and counted.
                    routed = await publish_confirmed(
                        channel,
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=properties,
                        mandatory=True,
                        confirm_timeout=max(deadline - loop.time(), 0.001),
                        deadlines=deadlines,
                    )
                    break
                except AccessRefused as exc:
                    raise PublishError(
                        f"the message to exchange {exchange!r} was not published: {exc}",
                        exchange=exchange,
                        routing_key=routing_key,
                        message_id=properties.message_id,
                    ) from exc
                except (BrokerUnavailable, ChannelLost) as exc:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise PublishTimeout(
                            f"the message to exchange {exchange!r} was not published within "
                            f"{self.publish_timeout} s: {exc}",
                            exchange=exchange,
                            routing_key=routing_key,
                            message_id=properties.message_id,
                        ) from None
                    log.warning("publish to exchange %r failed, sending again: %s", exchange, exc)
                    await asyncio.sleep(min(next(delays), remaining))
        finally:
            self._in_flight -= 1
            self._last_used = loop.time()
        if not routed:
            self._unroutable(exchange, routing_key, properties.message_id, mandatory)
        return routed

    async def _channel_before(
        self,
        deadline: float,
        exchange: str,
        routing_key: str,
        properties: spec.Basic.Properties,
    ) -> aiormq.abc.AbstractChannel:
        try:
            async with asyncio.timeout_at(deadline):
                return await self.channel.get()
        except TimeoutError:
            raise PublishTimeout(
                f"no connection to {self.channel.endpoints} within {self.publish_timeout} s",
                exchange=exchange,
                routing_key=routing_key,
                message_id=properties.message_id,
            ) from None

    def _unroutable(
        self, exchange: str, routing_key: str, message_id: str | None, mandatory: bool
    ) -> None:
        self.unroutable_count += 1
        if mandatory:
            raise UnroutableError(
                f"no queue is bound to exchange {exchange!r} for routing key {routing_key!r}",
                exchange=exchange,
                routing_key=routing_key,
                message_id=message_id,
            )
        log.warning(
            "event %s to exchange %r with routing key %r reached no queue",
            message_id,
            exchange,
            routing_key,
            extra={
                "exchange": exchange,
                "routing_key": routing_key,
                "message_id": message_id,
                "outcome": Outcome.UNROUTABLE.value,
            },
        )

    def _arm_idle_timer(self, delay: float | None = None) -> None:
        if self.idle_timeout is None or self.idle_timeout <= 0:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(delay or self.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        assert self.idle_timeout is not None
        idle_for = asyncio.get_running_loop().time() - self._last_used
        if self._in_flight or idle_for < self.idle_timeout:
            self._arm_idle_timer(max(self.idle_timeout - idle_for, 0.05))
            return
        log.debug("closing the idle publisher connection to %s", self.channel.endpoints)
        # Detach now, so a publish that starts before the close finishes opens a new one.
        task = asyncio.get_running_loop().create_task(close_connection(self.channel.detach()))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close the publishing connection (the next publish would reopen it)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        await self.channel.close()
        if self._closing:
            await asyncio.gather(*self._closing)
