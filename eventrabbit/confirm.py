"""One message on a confirm-mode channel: its properties, and a publish that waits for the
broker's confirm and says in eventrabbit's terms why it failed.

Shared by the :class:`~eventrabbit.publisher.Publisher` (events), the consumer (retry copies,
dead letters, replies) and the RPC client (requests).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from time import time
from typing import Any

import aiormq
import aiormq.abc
from pamqp import commands as spec

from .deadlines import Deadlines
from .errors import ChannelLost, PublishError, PublishTimeout
from .frame_encode import Properties
from .publish_frames import new_id, send

#: The content type of every body eventrabbit publishes.
JSON_CONTENT_TYPE = "application/json"
#: AMQP delivery mode 2: the broker writes the message to disk on durable queues.
PERSISTENT = 2
#: AMQP delivery mode 1: kept in memory only.
TRANSIENT = 1
#: Seconds a publish may take by default, waiting for a connection and re-sends included.
DEFAULT_PUBLISH_TIMEOUT = 10.0


# AMQP timestamps have one-second resolution: one datetime per second is enough.
_stamp_second = 0
_stamp = datetime.fromtimestamp(0, tz=UTC)


def _now() -> datetime:
    global _stamp_second, _stamp
    second = int(time())
    if second != _stamp_second:
        _stamp_second, _stamp = second, datetime.fromtimestamp(second, tz=UTC)
    return _stamp


def event_properties(
    *,
    headers: dict[str, Any] | None = None,
    correlation_id: str | None = None,
    delivery_mode: int = PERSISTENT,
    reply_to: str | None = None,
    expiration: str | None = None,
) -> spec.Basic.Properties:
    """Properties of a new message: JSON, persistent unless told, a unique id and the time."""
    return Properties(
        content_type=JSON_CONTENT_TYPE,
        delivery_mode=delivery_mode,
        message_id=new_id(),
        timestamp=_now(),
        headers=headers,
        correlation_id=correlation_id,
        reply_to=reply_to,
        expiration=expiration,
    )


def reply_properties(correlation_id: str | None) -> spec.Basic.Properties:
    """Properties of a reply: JSON and the request's ``correlation_id``, nothing more — a
    caller matches a reply by its correlation id, and every property is encoded by the server
    and decoded by the caller on the RPC hot path."""
    return Properties(
        content_type=JSON_CONTENT_TYPE, delivery_mode=PERSISTENT, correlation_id=correlation_id
    )


_NO_EXCHANGE = (
    "the exchange does not exist; declare it (or consume a ConsumeChannel that declares it) "
    "before publishing"
)


def _closed_for_missing(channel: aiormq.abc.AbstractChannel, exchange: str) -> bool:
    """Whether the broker closed ``channel`` because ``exchange`` does not exist."""
    closing = channel.closing
    if not closing.done() or closing.cancelled():
        return False
    reason = closing.exception()
    return isinstance(reason, aiormq.exceptions.ChannelNotFoundEntity) and (
        f"no exchange '{exchange}'" in str(reason)
    )


async def publish_confirmed(
    channel: aiormq.abc.AbstractChannel,
    body: bytes,
    *,
    exchange: str,
    routing_key: str,
    properties: spec.Basic.Properties,
    mandatory: bool = False,
    confirm_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    deadlines: Deadlines | None = None,
) -> bool:
    """Publish on a confirm-mode channel and wait for the confirm.

    :param deadlines: keeps ``confirm_timeout`` on a timer shared with other publishes
        (:mod:`eventrabbit.deadlines`); without, aiormq arms one for this publish.
    :returns: ``False`` when the broker returned the message as unroutable (``mandatory``).
    :raises PublishError: nack, missing exchange or lost channel.
    :raises PublishTimeout: no confirm within ``confirm_timeout`` seconds.
    """
    kind: type[PublishError]
    task = asyncio.current_task()
    ticket = None if deadlines is None or task is None else deadlines.start(confirm_timeout, task)
    expired = cancelled_too = False
    try:
        try:
            # Straight to the socket where nothing can come between (eventrabbit.publish_frames);
            # its deadline is the shared timer's, so only with one.
            confirmation = (
                None
                if ticket is None
                else send(
                    channel,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    body=body,
                    mandatory=mandatory,
                )
            )
            if confirmation is not None:
                await confirmation
            else:
                await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                    timeout=confirm_timeout if ticket is None else None,
                    # No wait for the socket's buffer: the confirm comes after the write
                    # anyway, and waiting for both costs the task a second wake-up per message.
                    wait=False,  # type: ignore[call-arg]  # aiormq's Channel has it, its ABC not
                )
        finally:
            if deadlines is not None and ticket is not None and deadlines.end(ticket):
                # The deadline cancelled the task: forget that cancellation, as asyncio.timeout
                # does; another one (the caller's) is still counted.
                expired = True
                cancelled_too = task is not None and task.uncancel() > 0
        return True
    except aiormq.exceptions.PublishError:
        return False  # returned: no queue is bound that matches
    except TimeoutError:
        kind, text = PublishTimeout, f"no confirm within {confirm_timeout} s"
    except aiormq.exceptions.ChannelNotFoundEntity as exc:
        # The broker closes the whole channel: only the publish whose exchange it names is at
        # fault; the others in flight on that channel are sent again.
        if f"no exchange '{exchange}'" in str(exc):
            kind, text = PublishError, _NO_EXCHANGE
        else:
            kind, text = ChannelLost, "the channel closed before the confirm"
    except aiormq.exceptions.DeliveryError:
        kind, text = PublishError, "the broker refused (nacked) it"
    except asyncio.CancelledError:
        if expired and not cancelled_too:
            kind, text = PublishTimeout, f"no confirm within {confirm_timeout} s"
        # aiormq cancels pending confirms when the connection dies; only a cancellation of
        # this task itself is a real cancellation.
        elif expired or task is None or task.cancelling() or not channel.is_closed:
            raise
        else:
            kind, text = ChannelLost, "the channel closed before the confirm"
    except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
        kind, text = ChannelLost, f"not confirmed: {type(exc).__name__}: {exc}"
    if kind is ChannelLost and _closed_for_missing(channel, exchange):
        # Another publish's missing exchange closed the channel, and it is this one's too:
        # sending again would only close the next channel the same way.
        kind, text = PublishError, _NO_EXCHANGE
    raise kind(
        f"message to exchange {exchange!r}: {text}",
        exchange=exchange,
        routing_key=routing_key,
        message_id=properties.message_id,
    )
