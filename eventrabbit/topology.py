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


def delay_queue_name(queue: str) -> str:
    """The queue that delays retries of ``queue``."""
    return queue + DELAY_SUFFIX


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue of ``queue``."""
    return queue + DEAD_LETTER_SUFFIX


def work_queue_arguments() -> dict[str, Any]:
    """Work queues get no ``x-`` arguments, so queues declared plain elsewhere are reused."""
    return {}


def delay_queue_arguments(queue: str, delay_seconds: float) -> dict[str, Any]:
    """A TTL queue that dead-letters into ``queue`` through the default exchange."""
    return {
        "x-message-ttl": int(delay_seconds * 1000),
        "x-dead-letter-exchange": DEFAULT_EXCHANGE,
        "x-dead-letter-routing-key": queue,
    }


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
    await _declare_queue(channel, queue, config.durable, work_queue_arguments())
    if retry.max_retries != 0:
        delay = delay_queue_arguments(queue, retry.retry_delay_seconds)
        await _declare_queue(channel, delay_queue_name(queue), config.durable, delay)
    await _declare_queue(channel, dead_letter_queue_name(queue), config.durable, None)
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
