"""What happens to a message whose handler failed, or which could not be read.

Theory of operation
-------------------
A failed message is never requeued in place (that would spin at full speed) and never
re-published to its exchange (other bound queues would see it twice). Instead:

1. :func:`decide` looks at the ``x-retry-count`` header the message carries and the retry
   config, and answers :class:`Retry` or :class:`DeadLetter`.
2. A retry copy — same body, properties and publisher headers, broker headers stripped,
   ``x-retry-count`` = the retry's number — is published with a confirm to ``<queue>.delay``.
   Its TTL is the delay; the broker then dead-letters it into ``<queue>``.
3. A dead letter is published with a confirm to ``<queue>.dlq`` with headers saying why.
4. Only after the confirm is the original acked. If the publish fails, the original is not
   acked and the broker redelivers it: a failure may be handled twice, never lost.

Bad input (:class:`~eventrabbit.errors.InvalidMessage`) is dead-lettered at once: retrying
cannot fix a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .common import RetryConfig
from .errors import InvalidMessage

#: How many retries this copy of a message is (0 or absent on the first delivery).
RETRY_COUNT_HEADER = "x-retry-count"
#: Why a message was dead-lettered: "<exception class>: <message>" or a bad-body reason.
ERROR_HEADER = "x-eventrabbit-error"
#: The queue a dead-lettered message failed on.
QUEUE_HEADER = "x-eventrabbit-queue"
#: The original ``user_id`` of a copy that could not keep it (another user published it).
ORIGINAL_USER_HEADER = "x-eventrabbit-user-id"
#: Headers the broker owns; copies must not carry them (they describe the old copy).
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
    }
)


@dataclass(slots=True, frozen=True)
class Retry:
    """Publish a copy to the delay queue as retry number ``attempt``."""

    attempt: int


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """Publish the message to the dead-letter queue; ``retries`` were done before."""

    reason: str
    retries: int


def retry_count(headers: dict[str, Any] | None) -> int:
    """The retries already done, from ``x-retry-count`` (a missing or odd value counts 0)."""
    if not headers:
        return 0
    value = headers.get(RETRY_COUNT_HEADER)
    return value if type(value) is int and value > 0 else 0


def describe(exc: BaseException) -> str:
    """``"<exception class name>: <message>"``, the text of ``x-eventrabbit-error``."""
    if isinstance(exc, InvalidMessage):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def decide(
    headers: dict[str, Any] | None, exc: BaseException, config: RetryConfig
) -> Retry | DeadLetter:
    """Retry or dead-letter a message whose handling raised ``exc``."""
    done = retry_count(headers)
    if isinstance(exc, InvalidMessage):
        return DeadLetter(describe(exc), done)
    if config.max_retries == -1 or done < config.max_retries:
        return Retry(done + 1)
    return DeadLetter(describe(exc), done)


def copy_headers(headers: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The publisher's headers without the broker's, updated with ``extra``."""
    kept = {k: v for k, v in headers.items() if k not in BROKER_HEADERS} if headers else {}
    kept.update(extra)
    return kept
