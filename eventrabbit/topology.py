"""Queue names, declare arguments, and the declare itself.

The names and arguments are pure functions, decided in one place and tested alone. Each work
queue ``q`` has two companions:

- ``q.delay`` holds retry copies for ``retry_delay_seconds`` (its message TTL), then
  dead-letters them through the default exchange back into ``q`` — only ``q``, so other queues
  bound to the same fanout exchange never see a retry.
- ``q.dlq`` holds what failed for good and what could not be read.

Every quorum work queue dead-letters into ``q.dlq``: from RabbitMQ 4.0 a quorum queue has a
delivery limit (20) even when none is set, and without a dead-letter target the broker drops
what exceeds it. Only the arguments asked for are sent: never ``x-queue-mode``,
``x-queue-version`` or mirroring arguments (RabbitMQ 4.x refuses them).

Declaring never retries what cannot work: a clash or a limit (406), a missing exchange (404),
a permission (403) or a refusal that closes the connection (:mod:`eventrabbit.permissions`)
is a :class:`TopologyError` naming the queue or exchange and the broker's reason.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiormq
import aiormq.abc

from .checks import DEAD_LETTER_SUFFIX as DEAD_LETTER_SUFFIX
from .checks import DELAY_SUFFIX as DELAY_SUFFIX
from .checks import milliseconds
from .common import ConsumeChannel, QueueConfig, RetryConfig
from .errors import TopologyError
from .permissions import (
    CONNECTION_REFUSALS,
    check_default_exchange_write,
    connection_refused,
    declare_refused,
    refused,
)
from .permissions import WRITE_CHECK_TYPE as WRITE_CHECK_TYPE
from .quorum import declare_quorum_queue

log = logging.getLogger(__name__)

#: The default exchange: routes by queue name.
DEFAULT_EXCHANGE = ""
#: RabbitMQ's pseudo-queue for direct reply-to: consume it for replies, name it in reply_to.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: One consumer of the queue gets its messages; the next takes over when it goes.
SINGLE_ACTIVE_CONSUMER = "x-single-active-consumer"

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
    """Only what was asked for, so queues declared plain elsewhere are reused as they are
    (``x-single-active-consumer`` only with ``single_active_consumer=True``).

    A quorum queue dead-letters what exceeds its delivery limit into ``queue.dlq`` — the
    ``delivery_limit`` set, or RabbitMQ 4.0's default of 20 (without a dead-letter target the
    broker would drop those messages).
    """
    arguments = _type_arguments(config)
    if arguments.get("x-queue-type") == "quorum":
        arguments["x-dead-letter-exchange"] = DEFAULT_EXCHANGE
        arguments["x-dead-letter-routing-key"] = dead_letter_queue_name(queue)
    if config is not None and config.delivery_limit is not None:
        arguments["x-delivery-limit"] = config.delivery_limit
    if config is not None and config.single_active_consumer:
        arguments[SINGLE_ACTIVE_CONSUMER] = True
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

    :raises TopologyError: a clash with what exists or a limit (406), a missing exchange
        (404), a permission the broker refuses (403), or a refusal that closed the connection.
    """
    try:
        await _declare(channel, target, config, retry)
    except CONNECTION_REFUSALS as exc:
        raise connection_refused(exc, queue=target.queue_name) from None


async def _declare(
    channel: aiormq.abc.AbstractChannel,
    target: ConsumeChannel,
    config: QueueConfig,
    retry: RetryConfig,
) -> None:
    queue = target.queue_name
    exchange = target.exchange_name
    if exchange:
        await declare_exchange(channel, target, exchange)
    durable = config.durable
    if config.queue_type == "quorum":
        arguments = work_queue_arguments(queue, config)
        reuse = config.delivery_limit is None  # an older eventrabbit's queue, without target
        await declare_quorum_queue(channel, queue, arguments, reuse_without_target=reuse)
    else:
        await _declare_queue(
            channel, queue, durable, work_queue_arguments(queue, config), queue=queue
        )
    if retry.max_retries != 0 and not config.ordered:  # ordered queues retry in place
        delay = delay_queue_arguments(queue, retry.retry_delay_seconds, config)
        await _declare_queue(channel, delay_queue_name(queue), durable, delay, queue=queue)
    dead_letters = dead_letter_queue_arguments(config)
    await _declare_queue(channel, dead_letter_queue_name(queue), durable, dead_letters, queue=queue)
    await check_default_exchange_write(channel, queue)
    if exchange:
        for key in target.routing_keys():
            try:
                await channel.queue_bind(queue, exchange, routing_key=key)
            except aiormq.exceptions.ChannelAccessRefused as exc:
                raise refused(exc, "bind", queue=queue, exchange=exchange) from None


async def declare_exchange(
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
        raise declare_refused(exc, name, queue=queue) from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        # A queue that dead-letters also needs read permission on itself (and write on the
        # dead-letter exchange, which the reply names); the reply does not say which.
        dead_letters = bool(arguments and "x-dead-letter-exchange" in arguments)
        permission = "configure or read" if dead_letters else "configure"
        raise refused(exc, "declare", queue=queue, permission=permission) from None
