"""What the ``dlq`` commands decide, as pure functions: the queue a name means, what a dead
letter says about itself, whether it is selected, where it goes back to and with which
properties.

Theory of operation
-------------------
- **Names.** ``QUEUE`` is a work queue or its dead-letter queue: ``orders`` and ``orders.dlq``
  both mean ``orders.dlq``. A name already ending ``.dlq`` is taken as it is (the dead-letter
  queue of a work queue named ``x.dlq`` is ``x.dlq.dlq``: name that).
- **A dead letter's story** is read from the headers eventrabbit wrote when it dead-lettered
  the message (:mod:`eventrabbit.failures`) and from its body: the ``action`` is the
  envelope's, read as a consumer reads it (``content_encoding`` undone); a body that cannot be
  read has no action (:data:`NO_ACTION` in counts).
- **Selection** is an AND of the filters given; no filter selects everything.
- **Re-driving** a selected letter publishes it to the queue its ``x-eventrabbit-queue`` names
  — one without that header (a message eventrabbit did not dead-letter, e.g. one RabbitMQ
  dead-lettered for a quorum ``delivery_limit``) is skipped and stays. The copy keeps every
  property and header as it arrived, byte for byte, except eventrabbit's three failure headers
  (so the message gets a fresh round of retries) and the broker's own headers, which describe
  the dead-letter copy; a headers table left empty is dropped with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pamqp import commands as spec

from eventrabbit import envelope
from eventrabbit.checks import DEAD_LETTER_SUFFIX, MAX_NAME_BYTES
from eventrabbit.common import DEFAULT_MAX_BODY_SIZE
from eventrabbit.errors import InvalidMessage
from eventrabbit.failures import BROKER_HEADERS, ERROR_HEADER, QUEUE_HEADER, RETRY_COUNT_HEADER
from eventrabbit.properties import WireProperties, parse_properties
from eventrabbit.topology import dead_letter_queue_name

#: The headers a re-driven message loses: eventrabbit's failure headers and the broker's.
REMOVED_HEADERS = frozenset({ERROR_HEADER, QUEUE_HEADER, RETRY_COUNT_HEADER} | BROKER_HEADERS)
#: The action of a dead letter whose body cannot be read, in counts.
NO_ACTION = "(unreadable)"
#: The error class of a dead letter without ``x-eventrabbit-error``, in counts.
NO_ERROR = "(none)"
#: Why a selected letter without ``x-eventrabbit-queue`` stays.
NO_QUEUE = f"no {QUEUE_HEADER} header"


def dead_letter_queue(name: str) -> str:
    """The dead-letter queue ``QUEUE`` means: ``orders`` and ``orders.dlq`` are ``orders.dlq``."""
    return name if name.endswith(DEAD_LETTER_SUFFIX) else dead_letter_queue_name(name)


@dataclass(frozen=True, slots=True)
class Letter:
    """What a dead letter says about itself.

    :param retry_count: ``x-retry-count`` when it is an integer, else ``None``.
    :param error: ``x-eventrabbit-error``; ``queue``: ``x-eventrabbit-queue`` (the queue it
        failed on and goes back to); either ``None`` when absent or not text.
    """

    message_id: str | None
    action: str | None
    retry_count: int | None
    error: str | None
    queue: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """One dead letter read: its delivery tag, its story, its properties as they arrived
    (``None`` when they cannot be parsed) and its body."""

    tag: int
    letter: Letter
    properties: WireProperties | None
    body: bytes


def letter(
    headers: Mapping[str, Any] | None,
    message_id: str | None,
    body: bytes,
    content_encoding: str | None = None,
) -> Letter:
    """Read a dead letter from its decoded headers, ``message_id``, body and encoding."""
    headers = headers or {}
    count = headers.get(RETRY_COUNT_HEADER)
    return Letter(
        message_id=message_id,
        action=action_of(body, content_encoding),
        retry_count=count if type(count) is int else None,
        error=_text(headers.get(ERROR_HEADER)),
        queue=_text(headers.get(QUEUE_HEADER)),
        body=body,
    )


def read_letter(
    raw: bytes, pamqp: spec.Basic.Properties, body: bytes
) -> tuple[WireProperties | None, Letter]:
    """A delivered dead letter's properties, from ``raw`` (the property list it arrived
    with), and what it says; ``None`` properties, and pamqp's reading of them, when ``raw``
    cannot be parsed."""
    try:
        wire = parse_properties(raw)
        decoded = wire.decoded()
    except ValueError:
        return None, letter(pamqp.headers, pamqp.message_id, body, pamqp.content_encoding)
    read = letter(
        decoded.get("headers"),
        decoded.get("message_id"),
        body,
        decoded.get("content_encoding"),
    )
    return wire, read


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return None


def action_of(body: bytes, content_encoding: str | None = None) -> str | None:
    """The envelope's ``action``, as a consumer would read it; ``None`` when it cannot."""
    try:
        if content_encoding:
            body = envelope.decode_content(body, content_encoding, DEFAULT_MAX_BODY_SIZE)
        return envelope.decode(body)[0]
    except InvalidMessage:
        return None


def error_class(error: str | None) -> str:
    """What counts group errors by: the text before the first ``:`` (the exception class of
    ``"ValueError: boom"``), the whole text when it has none, :data:`NO_ERROR` without one."""
    if error is None:
        return NO_ERROR
    head, colon, _ = error.partition(":")
    return head.strip() if colon and head.strip() else error


@dataclass(frozen=True, slots=True)
class Selection:
    """The filters of ``redrive`` and ``purge``; ``None`` is no filter."""

    action: str | None = None
    error_contains: str | None = None

    def matches(self, letter: Letter) -> bool:
        """Whether ``letter`` passes every filter given."""
        if self.action is not None and letter.action != self.action:
            return False
        return self.error_contains is None or (
            letter.error is not None and self.error_contains in letter.error
        )


@dataclass(frozen=True, slots=True)
class Move:
    """Publish the letter to ``queue`` (through the default exchange), then remove it."""

    queue: str


@dataclass(frozen=True, slots=True)
class Keep:
    """Not selected: it stays where it is."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Selected, but it cannot go back: it stays, counted under ``reason``."""

    reason: str


Decision = Move | Keep | Skip


def decide(letter: Letter, selection: Selection) -> Decision:
    """What ``redrive`` does with ``letter``."""
    if not selection.matches(letter):
        return Keep()
    if letter.queue is None:
        return Skip(NO_QUEUE)
    if not letter.queue or len(letter.queue.encode()) > MAX_NAME_BYTES:
        return Skip(f"{QUEUE_HEADER} is not a queue name")
    return Move(letter.queue)


def redriven(properties: WireProperties) -> WireProperties:
    """The properties a re-driven letter goes back with: these, byte for byte, without
    :data:`REMOVED_HEADERS` (and without a headers table they leave empty)."""
    kept = properties.without_headers(REMOVED_HEADERS)
    return kept if kept.headers else replace(kept, headers=None)


def preview(body: bytes, size: int = 60) -> str:
    """The start of ``body`` as one printable line: text as it is, anything else escaped,
    ``...`` when cut."""
    text = body[:size].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return shown + ("..." if len(body) > size else "")
