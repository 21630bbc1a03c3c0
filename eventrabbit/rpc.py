"""RPC calls: publish a request with ``reply_to`` and wait for the handler's reply.

Replies come through RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``): no reply queue is
declared. The requests must be published on the channel that consumes the replies, so the
client keeps one channel of its own, shared by every call in flight and told apart by
``correlation_id``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import aiormq
import aiormq.abc
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from . import envelope
from .confirm import TRANSIENT, event_properties, publish_confirmed
from .deadlines import Deadlines
from .errors import (
    BrokerUnavailable,
    PublishError,
    ReplyLost,
    RequestError,
    RPCError,
    RPCTimeout,
    UnroutableRequest,
)
from .fanout import HookSet
from .observed import Call, ConnectionRole, Outcome, Publish, PublishKind
from .own_channel import OwnChannel
from .publish_frames import new_id
from .topology import DIRECT_REPLY_TO

log = logging.getLogger(__name__)

#: Seconds a call waits for its reply by default.
DEFAULT_CALL_TIMEOUT = 30.0
#: How a call that raised ended, for its hooks (any other exception: ``FAILED``).
_CALL_OUTCOMES = {RPCTimeout: Outcome.TIMED_OUT, UnroutableRequest: Outcome.UNROUTABLE}


class RPCClient:
    """Makes RPC calls on a connection and channel of its own, opened on the first call."""

    def __init__(
        self, url: str | Sequence[str], *, publish_timeout: float, hooks: HookSet | None = None
    ) -> None:
        told = None if hooks is None else hooks.own_connection(ConnectionRole.RPC, url)
        self.channel = OwnChannel(url, on_channel=self._listen, on_change=told)
        self.publish_timeout = publish_timeout
        self._hooks = hooks
        self._pending: dict[str, asyncio.Future[Any]] = {}
        #: The channel each pending call's request went out on: only its replies come there.
        self._sent_on: dict[str, aiormq.abc.AbstractChannel] = {}
        self._deadlines: Deadlines | None = None  # the confirm timeouts' one timer

    @property
    def pending(self) -> int:
        """Calls waiting for their reply."""
        return len(self._pending)

    async def call(
        self,
        action: str,
        data: Any,
        *,
        exchange_name: str = "",
        key: str = "",
        timeout: float = DEFAULT_CALL_TIMEOUT,  # noqa: ASYNC109 (the documented API)
        expiration: float | None = None,
    ) -> Any:
        """Send a request and return the handler's result.

        :param exchange_name: where to publish; ``""`` (the default exchange) with ``key`` =
            the server's queue name reaches that queue directly.
        :param timeout: seconds to wait for the reply.
        :param expiration: seconds the request may wait in a queue before the broker drops it;
            default ``timeout``, so a request nobody answers in time does not linger.
        :raises RPCTimeout: no reply within ``timeout``.
        :raises RemoteError: the handler failed for good; has ``type`` and ``message``.
        :raises UnroutableRequest: no queue receives the request (an ``UnroutableError`` too).
        :raises RequestError: the broker did not take the request, or no connection.
        :raises ReplyLost: the RPC channel closed while the call waited for its reply.
        :raises RPCError: a reply that is not one. Every error above is an ``RPCError``.
        :raises TypeError: ``data`` is not JSON-serialisable.
        """
        correlation_id = new_id()
        span = None
        if self._hooks is not None:  # started first: the call's span is its request's parent
            span = self._hooks.call(Call(action, exchange_name, key, correlation_id))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            try:
                async with asyncio.timeout(timeout):
                    await self._send(
                        action, data, exchange_name, key, correlation_id, expiration or timeout
                    )
                    result = await future
            except TimeoutError:
                raise RPCTimeout(
                    f"no reply to {action!r} within {timeout} s", action=action
                ) from None
        except BaseException as exc:
            if span is not None:
                span.end(_CALL_OUTCOMES.get(type(exc), Outcome.FAILED), exc)
            raise
        finally:
            self._pending.pop(correlation_id, None)
            self._sent_on.pop(correlation_id, None)
        if span is not None:
            span.end(Outcome.REPLIED)
        return result

    async def _send(
        self,
        action: str,
        data: Any,
        exchange: str,
        key: str,
        correlation_id: str,
        expiration: float,
    ) -> None:
        # Transient: a request lives at most ``expiration``, and its reply channel would not
        # survive a broker restart anyway, so writing it to disk buys nothing.
        properties = event_properties(
            correlation_id=correlation_id,
            delivery_mode=TRANSIENT,
            reply_to=DIRECT_REPLY_TO,
            expiration=str(max(1, math.ceil(expiration * 1000))),
        )
        sending = self._request(action, envelope.encode(action, data), exchange, key, properties)
        if self._hooks is not None:
            publish = Publish(
                PublishKind.REQUEST,
                exchange,
                key,
                action,
                properties.message_id,
                correlation_id,
                *self.channel.server,
            )
            await self._hooks.published(publish, properties, sending)
        else:
            await sending

    async def _request(
        self, action: str, body: bytes, exchange: str, key: str, properties: spec.Basic.Properties
    ) -> None:
        try:
            deadlines = self._deadlines = Deadlines.on(self._deadlines)
            channel = self.channel.open_channel or await self.channel.get()
            self._sent_on[str(properties.correlation_id)] = channel
            routed = await publish_confirmed(
                channel,
                body,
                exchange=exchange,
                routing_key=key,
                properties=properties,
                mandatory=True,
                confirm_timeout=self.publish_timeout,
                deadlines=deadlines,
            )
        except (PublishError, BrokerUnavailable) as exc:
            raise RequestError(
                f"the {action!r} request was not published: {exc}",
                exchange=exchange,
                routing_key=key,
                message_id=properties.message_id,
            ) from exc
        if not routed:
            raise UnroutableRequest(
                f"no queue receives {action!r} requests on exchange {exchange!r} with key {key!r}",
                exchange=exchange,
                routing_key=key,
                message_id=properties.message_id,
            )

    async def _listen(self, channel: aiormq.abc.AbstractChannel) -> None:
        await channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, no_ack=True)
        channel.closing.add_done_callback(lambda _: self._on_channel_closed(channel))

    async def _on_reply(self, message: DeliveredMessage) -> None:
        future = self._pending.get(message.header.properties.correlation_id or "")
        if future is None or future.done():
            log.debug("reply for no pending call dropped")
            return
        try:
            future.set_result(envelope.decode_reply(message.body))
        except RPCError as exc:  # an error reply (RemoteError) or an unreadable one
            future.set_exception(exc)

    def _on_channel_closed(self, channel: aiormq.abc.AbstractChannel) -> None:
        # Direct replies are bound to the channel: calls sent on a closed one can never
        # complete. Calls sent since on its replacement wait on.
        for correlation_id, sent_on in list(self._sent_on.items()):
            future = self._pending.get(correlation_id)
            if sent_on is channel and future is not None and not future.done():
                future.set_exception(
                    ReplyLost("the RPC channel closed while the call waited for its reply")
                )

    async def close(self) -> None:
        """Close the RPC connection; calls still waiting fail."""
        await self.channel.close()
