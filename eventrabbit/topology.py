"""Queue names, declare arguments, and the declare itself.

The names and arguments are pure functions, decided in one place and tested alone.

Each work queue ``q`` has two companions:

- ``q.delay`` holds retry copies for ``retry_delay_seconds`` (its message TTL), then
  dead-letters them through the default exchange back into ``q`` — only ``q``, so other queues
  bound to the same fanout exchange never see a retry.
- ``q.dlq`` holds what failed for good and what could not be read.

Declaring never retries what cannot work: a clash with what exists (406), a missing exchange
(404) or a permission the broker refuses (403, see :mod:`eventrabbit.permissions`) is a
:class:`TopologyError` naming the queue or exchange, and for a refusal the permission.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiormq
import aiormq.abc
from pamqp import commands as spec

from .checks import DEAD_LETTER_SUFFIX as DEAD_LETTER_SUFFIX
from .checks import DELAY_SUFFIX as DELAY_SUFFIX
from .checks import milliseconds
from .common import ConsumeChannel, QueueConfig, RetryConfig
from .errors import TopologyError
from .permissions import refused

log = logging.getLogger(__name__)

#: The default exchange: routes by queue name.
DEFAULT_EXCHANGE = ""
#: RabbitMQ's pseudo-queue for direct reply-to: consume it for replies, name it in reply_to.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: The ``type`` property of the empty message that checks, when consuming starts, that the
#: user may write to the default exchange. It has routing key ``""``, which names no queue.
WRITE_CHECK_TYPE = "eventrabbit.write-check"

# A 406 for an exchange names the first setting that differs; RabbitMQ compares the type first
# (rabbit_exchange:assert_equivalence: type, durable, auto_delete, internal, arguments).
_TYPE_CLASH = "inequivalent arg 'type'"
_RECEIVED = re.compile(r"received '([^']*)' but current is '([^']*)'")


def delay_queue_name(queue: str) -> str:
    """The queue that delays retries of ``queue``."""
    return queue + DELAY_SUFFIX


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue of ``queue``."""
    return queue + DEAD_LETTER_SUFFIX


def _type_arguments(config: QueueConfig | None) -> dict[str, Any]:
    if config is None or config.queue_type is None:
        return {}
    return {"x-queue-type": config.queue_type}


def work_queue_arguments(queue: str, config: QueueConfig | None = None) -> dict[str, Any]:
    """Only what was asked for, so queues declared plain elsewhere are reused as they are.

    A quorum queue with a ``delivery_limit`` dead-letters what exceeds it into ``queue.dlq``
    (without a dead-letter target RabbitMQ would drop those messages).
    """
    arguments = _type_arguments(config)
    if config is not None and config.delivery_limit is not None:
        arguments["x-delivery-limit"] = config.delivery_limit
        arguments["x-dead-letter-exchange"] = DEFAULT_EXCHANGE
        arguments["x-dead-letter-routing-key"] = dead_letter_queue_name(queue)
    return arguments


def delay_queue_arguments(
    queue: str, delay_seconds: float, config: QueueConfig | None = None
) -> dict[str, Any]:
    """A TTL queue that dead-letters into ``queue`` through the default exchange."""
    arguments = _type_arguments(config)
    arguments["x-message-ttl"] = milliseconds(delay_seconds)
    arguments["x-dead-letter-exchange"] = DEFAULT_EXCHANGE
    arguments["x-dead-letter-routing-key"] = queue
    if arguments.get("x-queue-type") == "quorum":
        # Quorum queues dead-letter at-most-once unless told otherwise.
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


def dead_letter_queue_arguments(config: QueueConfig | None = None) -> dict[str, Any]:
    """The dead-letter queue is a plain queue of the configured type."""
    return _type_arguments(config)


async def declare(
    channel: aiormq.abc.AbstractChannel,
    target: ConsumeChannel,
    config: QueueConfig,
    retry: RetryConfig,
) -> None:
    """Declare the exchange, the work queue, its delay and dead-letter queues, and bindings;
    check that the user may publish retry copies and dead letters.

    Idempotent, so it is replayed as is after every reconnect.

    :raises TopologyError: a clash with what exists (406), a missing exchange (404), or a
        permission the broker refuses (403).
    """
    queue = target.queue_name
    exchange = target.exchange_name
    if exchange:
        await _declare_exchange(channel, target, exchange)
    durable = config.durable
    await _declare_queue(channel, queue, durable, work_queue_arguments(queue, config), queue=queue)
    if retry.max_retries != 0:
        delay = delay_queue_arguments(queue, retry.retry_delay_seconds, config)
        await _declare_queue(channel, delay_queue_name(queue), durable, delay, queue=queue)
    dead_letters = dead_letter_queue_arguments(config)
    await _declare_queue(channel, dead_letter_queue_name(queue), durable, dead_letters, queue=queue)
    await _check_default_exchange_write(channel, queue)
    if exchange:
        for key in target.routing_keys():
            try:
                await channel.queue_bind(queue, exchange, routing_key=key)
            except aiormq.exceptions.ChannelAccessRefused as exc:
                raise refused(exc, "bind", queue=queue, exchange=exchange) from None


async def _declare_exchange(
    channel: aiormq.abc.AbstractChannel, target: ConsumeChannel, exchange: str
) -> None:
    kind = target.exchange_type
    # amq.* exchanges exist on every broker and may not be declared actively.
    if kind is None or exchange.startswith("amq."):
        try:
            await channel.exchange_declare(exchange, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise TopologyError(
                f"exchange {exchange!r} does not exist; give ConsumeChannel an exchange_type to "
                "declare it, or declare it before consuming",
                exchange=exchange,
            ) from None
        return
    # One active declare settles it, even against a service declaring at the same moment: it
    # creates the exchange, or matches it exactly, or gets a 406 naming the first setting that
    # differs. A passive declare could not tell the type. The 406 closes the channel it came
    # on, so the declare goes on a channel of its own.
    probe = await channel.connection.channel(publisher_confirms=False)
    try:
        await probe.exchange_declare(
            exchange, exchange_type=str(kind), durable=target.exchange_durable
        )
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        _reuse_existing(exchange, str(kind), str(exc))
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise refused(exc, "declare", queue=target.queue_name, exchange=exchange) from None
    finally:
        if not probe.is_closed:
            await probe.close()


def _reuse_existing(exchange: str, kind: str, reason: str) -> None:
    """An exchange exists with other settings: fine unless its type differs."""
    if _TYPE_CLASH in reason:
        found = _RECEIVED.search(reason)
        existing = repr(found.group(2)) if found else "another type"
        raise TopologyError(
            f"exchange {exchange!r} exists with type {existing}, not {kind!r}; consume it with "
            f"exchange_type={existing}, or without an exchange_type to bind to it as it is",
            exchange=exchange,
        )
    # Same type: an older fleet's transient exchange (eventrabbit 0.1 declared it so), or one
    # with arguments of its own. Used as it is; redeclaring it differently is impossible anyway.
    log.info("using exchange %r as it exists (%s)", exchange, reason)


async def _declare_queue(
    channel: aiormq.abc.AbstractChannel,
    name: str,
    durable: bool,
    arguments: dict[str, Any] | None,
    *,
    queue: str,
) -> None:
    """Declare ``name``: the work queue ``queue`` or one of its companions."""
    try:
        await channel.queue_declare(name, durable=durable, arguments=arguments or None)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"queue {name!r} exists with other arguments than eventrabbit declares ({exc}); "
            "delete it or consume it with matching settings",
            queue=name,
        ) from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        # A queue that dead-letters also needs read permission on itself (and write on the
        # dead-letter exchange, which the reply names); the reply does not say which.
        dead_letters = bool(arguments and "x-dead-letter-exchange" in arguments)
        permission = "configure or read" if dead_letters else "configure"
        raise refused(exc, "declare", queue=queue, permission=permission) from None


async def _check_default_exchange_write(channel: aiormq.abc.AbstractChannel, queue: str) -> None:
    """Publish an empty message that no queue receives, to learn now rather than at the first
    failed message whether the user may write to the default exchange.

    RabbitMQ checks that permission only when a message is published, and a refusal then
    would close the channel with the failed message still unacked.
    """
    if not isinstance(channel, aiormq.Channel):
        # Only RabbitMQ has permissions to refuse; a stand-in such as eventrabbit.testing's
        # in-memory channel would just record a message that went nowhere.
        return
    try:
        await channel.basic_publish(
            b"",
            exchange=DEFAULT_EXCHANGE,
            routing_key="",  # no queue has an empty name: the message goes nowhere
            properties=spec.Basic.Properties(message_type=WRITE_CHECK_TYPE),
        )
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise refused(exc, "publish", queue=queue) from None
