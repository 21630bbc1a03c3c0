"""Queue names, declare arguments, and the declare itself.

The names and arguments are pure functions, decided in one place and tested alone.

Each work queue ``q`` has two companions:

- ``q.delay`` holds retry copies for ``retry_delay_seconds`` (its message TTL), then
  dead-letters them through the default exchange back into ``q`` — only ``q``, so other queues
  bound to the same fanout exchange never see a retry.
- ``q.dlq`` holds what failed for good and what could not be read.
"""

from __future__ import annotations

from typing import Any

import aiormq
import aiormq.abc

from .common import ConsumeChannel, QueueConfig, RetryConfig
from .errors import TopologyError

#: Suffix of the queue that delays retries.
DELAY_SUFFIX = ".delay"
#: Suffix of the dead-letter queue.
DEAD_LETTER_SUFFIX = ".dlq"
#: The default exchange: routes by queue name.
DEFAULT_EXCHANGE = ""
#: RabbitMQ's pseudo-queue for direct reply-to: consume it for replies, name it in reply_to.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


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
    arguments["x-message-ttl"] = round(delay_seconds * 1000)
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
    """Declare the work queue, its delay and dead-letter queues, the exchange and bindings.

    Idempotent, so it is replayed as is after every reconnect.

    :raises TopologyError: a clash with what exists (406), or a missing exchange (404).
    """
    queue = target.queue_name
    exchange = target.exchange_name
    if exchange:
        await _declare_exchange(channel, exchange, target.exchange_type)
    await _declare_queue(channel, queue, config.durable, work_queue_arguments(queue, config))
    if retry.max_retries != 0:
        delay = delay_queue_arguments(queue, retry.retry_delay_seconds, config)
        await _declare_queue(channel, delay_queue_name(queue), config.durable, delay)
    dead_letters = dead_letter_queue_arguments(config)
    await _declare_queue(channel, dead_letter_queue_name(queue), config.durable, dead_letters)
    if exchange:
        for key in target.routing_keys():
            await channel.queue_bind(queue, exchange, routing_key=key)


async def _declare_exchange(
    channel: aiormq.abc.AbstractChannel, exchange: str, exchange_type: object
) -> None:
    # amq.* exchanges exist on every broker and may not be declared actively.
    passive = exchange_type is None or exchange.startswith("amq.")
    try:
        await channel.exchange_declare(
            exchange,
            exchange_type=str(exchange_type or "direct"),
            durable=True,
            passive=passive,
        )
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise TopologyError(
            f"exchange {exchange!r} does not exist; give ConsumeChannel an exchange_type to "
            "declare it, or declare it before consuming",
            exchange=exchange,
        ) from None
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"exchange {exchange!r} exists with other settings than asked: {exc}",
            exchange=exchange,
        ) from None


async def _declare_queue(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    durable: bool,
    arguments: dict[str, Any] | None,
) -> None:
    try:
        await channel.queue_declare(queue, durable=durable, arguments=arguments or None)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyError(
            f"queue {queue!r} exists with other arguments than eventrabbit declares ({exc}); "
            "delete it or consume it with matching settings",
            queue=queue,
        ) from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise TopologyError(f"queue {queue!r} cannot be declared: {exc}", queue=queue) from None
