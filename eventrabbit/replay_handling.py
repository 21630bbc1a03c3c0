"""Handling one replayed event: dispatch, in-process retries, and what a failure leads to.

Theory of operation
-------------------
The broker cannot retry or dead-letter a stream's message (nothing is ever removed from a
stream, and ``basic.nack`` only gives credit back), so a replay does both itself:

- a handler that raises is called again, ``RetryConfig.max_retries`` times (``-1``: until
  it succeeds), ``retry_delay_seconds`` apart; bad input
  (:class:`~eventrabbit.errors.InvalidMessage`) is never retried;
- then, by the caller's ``on_failure``: ``"stop"`` raises
  :class:`~eventrabbit.errors.ReplayFailed` naming the offset (a projection must not skip an
  event), or ``"dead_letter"`` copies the event — with the usual ``x-eventrabbit-*`` headers
  and its ``x-stream-offset`` — to ``<stream>.dlq`` (confirmed) and goes on.

Replies to requests found in the stream are side effects like publishes: held back unless
the replay opted in, then sent as the consumer would.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, Final, Literal, Protocol

import aiormq.abc
from aiormq.abc import DeliveredMessage

from . import envelope
from .common import QueueConfig, ReconnectConfig, RetryConfig
from .dispatch import action_of, dispatch
from .errors import ConfigurationError, InvalidMessage, ReplayFailed
from .failures import RETRY_COUNT_HEADER, Reply, describe
from .outbox import Outbox
from .registry import Registry
from .replay_context import Replaying

log = logging.getLogger(__name__)

#: What happens to an event that failed for good.
FailurePolicy = Literal["stop", "dead_letter"]
STOP: Final = "stop"
DEAD_LETTER: Final = "dead_letter"
_POLICIES = (STOP, DEAD_LETTER)
# What a handler may raise that is not a failure of the event: the process is stopping.
_STOP_PROCESS = (KeyboardInterrupt, SystemExit)
_NEVER: Final = RetryConfig(max_retries=0)


class Source(Protocol):
    """What a replay needs of a :class:`~eventrabbit.handle.Handle` (which it is a method of;
    a protocol, so that this module does not import the handle)."""

    registry: Registry
    queue_config: QueueConfig
    retry_config: RetryConfig
    reconnect: ReconnectConfig


class Handling:
    """Handles a replay's events one by one and counts what it did."""

    def __init__(
        self,
        handle: Source,
        stream: str,
        context: Replaying,
        policy: FailurePolicy,
        retry: RetryConfig,
    ) -> None:
        if policy not in _POLICIES:
            raise ConfigurationError(f"on_failure={policy!r} must be 'stop' or 'dead_letter'")
        self.stream = stream
        self.policy = policy
        self._handlers = handle.registry.handlers
        self._max_body = handle.queue_config.max_body_size
        self._retry = retry
        self._context = context
        self._outbox: Outbox | None = None
        self._user: str | None = None
        self.handled = self.dead_lettered = 0

    def attach(self, connection: aiormq.abc.AbstractConnection) -> None:
        """Publish dead letters and replies over ``connection`` (the reader's, once made)."""
        self._outbox = Outbox(connection, self.stream)
        self._user = getattr(connection.url, "user", None)

    async def detach(self) -> None:
        """Close the publishing channel, if any (the connection is going away)."""
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            await outbox.close()

    async def handle(self, message: DeliveredMessage, offset: int) -> None:
        """Handle the event at ``offset``, retrying in process; then apply the policy.

        :raises ReplayFailed: it failed for good and the policy is ``"stop"``.
        """
        self._context.offset = offset
        attempts = 0
        while True:
            try:
                result = await dispatch(self._handlers, message, self._max_body)
            except _STOP_PROCESS:
                raise
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                error: BaseException = asyncio.CancelledError("raised by the handler")
            except InvalidMessage as exc:
                await self._failed(message, offset, exc, attempts)
                return
            except BaseException as exc:  # noqa: BLE001 — every failure is retried or decided
                error = exc
            else:
                self.handled += 1
                await self._reply(message, result)
                return
            limit = self._retry.max_retries
            if limit != -1 and attempts >= limit:
                await self._failed(message, offset, error, attempts)
                return
            attempts += 1
            log.warning(
                "replayed event at offset %d of stream %r failed (%s); retry %d in %s s",
                offset,
                self.stream,
                describe(error),
                attempts,
                self._retry.retry_delay_seconds,
            )
            await asyncio.sleep(self._retry.retry_delay_seconds)

    async def _reply(self, message: DeliveredMessage, result: Any) -> None:
        properties = message.header.properties
        if not properties.reply_to:
            return
        if not self._context.side_effects:
            self._context.held_back += 1
            return
        if self._outbox is not None:
            body = envelope.encode_reply(result)
            reply = Reply(properties.reply_to, properties.correlation_id, body)
            await self._outbox.reply(reply, properties.message_id)

    async def _failed(
        self, message: DeliveredMessage, offset: int, exc: BaseException, attempts: int
    ) -> None:
        action = action_of(message, self._max_body)
        if self.policy == STOP:
            raise ReplayFailed(
                f"event at offset {offset} of stream {self.stream!r} (action {action!r}) failed "
                f"after {attempts} retries: {describe(exc)}; the replay stopped before it",
                stream=self.stream,
                offset=offset,
                action=action,
            ) from exc
        outbox = self._outbox
        assert outbox is not None  # attached before the first delivery
        properties = copy.copy(message.header.properties)
        # The retries done in process, as the live consumer's copies count them.
        properties.headers = {**(properties.headers or {}), RETRY_COUNT_HEADER: attempts}
        dead = outbox.copy_of(properties, None, exc, _NEVER, self._user)
        fields = outbox.fields(dead, action, properties.message_id)
        # Raises when not confirmed: the reader reconnects and handles the event again.
        await outbox.copy(dead, message.body, fields | {"stream_offset": offset})
        self.handled += 1
        self.dead_lettered += 1
