"""What happens to a message whose handler failed, or which could not be read.

Theory of operation
-------------------
A failed message is never requeued in place (that would spin at full speed) and never
re-published to its exchange (other bound queues would see it twice). Instead:

1. :func:`decide` looks at the ``x-retry-count`` header the message carries and the retry
   config, and answers :class:`Retry` or :class:`DeadLetter`.
2. :func:`plan` turns the decision into the :class:`Copy` to publish — the only place where
   failure headers are written:

   - a retry copy — same body, properties and publisher headers, broker headers stripped,
     ``x-retry-count`` = the retry's number — goes to ``<queue>.delay``. Its TTL is the
     delay; the broker then dead-letters it into ``<queue>``;
   - a dead letter goes to ``<queue>.dlq`` with headers saying why, and a request (one with
     ``reply_to``) gets an error reply, so its caller does not wait forever;
   - a ``user_id`` that is not the consumer's own user moves into a header: RabbitMQ refuses
     a ``user_id`` other than the publishing connection's.
3. The consumer publishes the copy with a confirm, then the reply, and only then acks the
   original. If the publish fails, the original is not acked and the broker redelivers it: a
   failure may be handled twice, never lost.

Bad input (:class:`~eventrabbit.errors.InvalidMessage`) is dead-lettered at once: retrying
cannot fix a body. So is a message the broker's consumer timeout took back too often
(:class:`~eventrabbit.errors.ConsumerTimeout`): its retries would close channels too.

Everything written into a copy is bounded, so that no message can make its own copy too large
for a frame: a reason is cut to :data:`MAX_REASON_BYTES`, and a retry count at
:data:`MAX_RETRY_COUNT` (only a forged header gets there) is dead-lettered instead of retried.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pamqp import commands as spec

from .common import QueueResponse, RetryConfig
from .errors import ConsumerTimeout, InvalidMessage
from .topology import dead_letter_queue_name, delay_queue_name

#: How many retries this copy of a message is (0 or absent on the first delivery).
RETRY_COUNT_HEADER = "x-retry-count"
#: Why a message was dead-lettered: "<exception class>: <message>" or a bad-body reason.
ERROR_HEADER = "x-eventrabbit-error"
#: The queue a dead-lettered message failed on.
QUEUE_HEADER = "x-eventrabbit-queue"
#: The original ``user_id`` of a copy that could not keep it (another user published it).
ORIGINAL_USER_HEADER = "x-eventrabbit-user-id"
#: The longest reason (UTF-8 bytes) written into ``x-eventrabbit-error`` or an error reply.
MAX_REASON_BYTES = 2048
#: The highest ``x-retry-count`` a copy carries; a message that claims more is dead-lettered
#: (``-1`` retries forever, but 2**31 - 1 retries are 340 years at one a second).
MAX_RETRY_COUNT = 2**31 - 1
#: Headers the broker owns; copies must not carry them (they describe the old copy): its
#: dead-letter history, a quorum queue's delivery count and (from RabbitMQ 4.3) acquired count.
BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
        "x-acquired-count",
    }
)


@dataclass(slots=True, frozen=True)
class Retry:
    """Publish a copy to the delay queue as retry number ``attempt``; ``reason`` is why."""

    attempt: int
    reason: str


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """Publish the message to the dead-letter queue; ``retries`` were done before."""

    reason: str
    retries: int


@dataclass(slots=True, frozen=True)
class Reply:
    """A reply to publish through the default exchange to a request's ``reply_to``."""

    routing_key: str
    correlation_id: str | None
    body: bytes


@dataclass(slots=True, frozen=True)
class Copy:
    """What to publish (confirmed) for a failed message before the original is acked.

    :param queue: the target: ``<queue>.delay`` for a retry, ``<queue>.dlq`` for a dead letter.
    :param properties: the original's, with the copy's headers (and ``user_id``).
    :param reply: the error reply a failed request's caller gets, sent after the copy.
    :param extra: the headers eventrabbit wrote into ``properties`` (for a wire-faithful copy
        made from the original's bytes, :func:`eventrabbit.copies.faithful`).
    """

    decision: Retry | DeadLetter
    queue: str
    properties: spec.Basic.Properties
    reply: Reply | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        """The retries done before this copy."""
        decision = self.decision
        return decision.retries if isinstance(decision, DeadLetter) else decision.attempt - 1


def retry_count(headers: dict[str, Any] | None) -> int:
    """The retries already done, from ``x-retry-count``: a missing or odd value counts 0, a
    huge one counts :data:`MAX_RETRY_COUNT`."""
    if not headers:
        return 0
    value = headers.get(RETRY_COUNT_HEADER)
    return min(value, MAX_RETRY_COUNT) if type(value) is int and value > 0 else 0


def bounded(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, saying how much was cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    room = max(0, limit - len(f"... ({len(data)} more bytes cut)"))  # the longest note
    keep = data[:room].decode("utf-8", "ignore")
    return f"{keep}... ({len(data) - len(keep.encode())} more bytes cut)"


def message_of(exc: BaseException) -> str:
    """``str(exc)``, bounded, and something readable even when ``__str__`` itself raises."""
    try:
        text = str(exc)
    except Exception as error:  # noqa: BLE001 — a broken __str__ must not lose the message
        text = f"<str() of the exception failed: {type(error).__name__}>"
    return bounded(text)


def describe(exc: BaseException) -> str:
    """``"<exception class name>: <message>"`` (bounded), the text of ``x-eventrabbit-error``."""
    if isinstance(exc, InvalidMessage):
        return bounded(exc.reason)
    return bounded(f"{type(exc).__name__}: {message_of(exc)}")


def decide(
    headers: dict[str, Any] | None, exc: BaseException, config: RetryConfig
) -> Retry | DeadLetter:
    """Retry or dead-letter a message whose handling raised ``exc``."""
    done = retry_count(headers)
    reason = describe(exc)
    if isinstance(exc, InvalidMessage | ConsumerTimeout):
        return DeadLetter(reason, done)
    if done >= MAX_RETRY_COUNT:
        return DeadLetter(f"x-retry-count is at its limit ({MAX_RETRY_COUNT}): {reason}", done)
    if config.max_retries == -1 or done < config.max_retries:
        return Retry(done + 1, reason)
    return DeadLetter(reason, done)


def plan(
    properties: spec.Basic.Properties,
    exc: BaseException,
    config: RetryConfig,
    *,
    queue: str,
    user: str | None,
) -> Copy:
    """The copy to publish for a message of ``queue`` whose handling raised ``exc``.

    :param properties: the delivered message's properties (left unchanged).
    :param user: the user the consumer's connection is logged in as.
    """
    decision = decide(properties.headers, exc, config)
    reply = None
    if isinstance(decision, Retry):
        target = delay_queue_name(queue)
        extra: dict[str, Any] = {RETRY_COUNT_HEADER: decision.attempt}
    else:
        target = dead_letter_queue_name(queue)
        extra = {ERROR_HEADER: decision.reason, RETRY_COUNT_HEADER: decision.retries}
        extra[QUEUE_HEADER] = queue
        if properties.reply_to:
            error = QueueResponse.failure(type(exc).__name__, message_of(exc))
            reply = Reply(properties.reply_to, properties.correlation_id, error.to_bytes())
    copied = copy.copy(properties)
    if copied.user_id and copied.user_id != user:
        extra[ORIGINAL_USER_HEADER] = copied.user_id
        copied.user_id = None
    copied.headers = copy_headers(properties.headers, extra)
    return Copy(decision, target, copied, reply, extra)


def copy_headers(headers: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The publisher's headers without the broker's, updated with ``extra``."""
    kept = {k: v for k, v in headers.items() if k not in BROKER_HEADERS} if headers else {}
    kept.update(extra)
    return kept


def last_resort(
    properties: spec.Basic.Properties, reason: str, retries: int, *, queue: str
) -> Copy:
    """A dead letter that can always be published: the original's headers and properties
    could not be copied (``reason`` says why), so it carries only eventrabbit's headers and the
    original's ``message_id`` and ``correlation_id`` where they are plain strings."""
    headers: dict[str, Any] = {
        ERROR_HEADER: bounded(reason),
        RETRY_COUNT_HEADER: min(max(retries, 0), MAX_RETRY_COUNT),
        QUEUE_HEADER: queue,
    }
    copied = spec.Basic.Properties(headers=headers, delivery_mode=properties.delivery_mode)
    for name in ("message_id", "correlation_id", "content_type"):
        value = getattr(properties, name, None)
        if isinstance(value, str) and value.isprintable() and len(value.encode()) < 256:
            setattr(copied, name, value)
    decision = DeadLetter(headers[ERROR_HEADER], retries)
    return Copy(decision, dead_letter_queue_name(queue), copied, extra=dict(headers))
