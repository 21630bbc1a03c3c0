"""Dispatch: from a delivered message to its handler's result.

Every way a message can fail to reach its handler — too large, an encoding that cannot be
undone, a body that is not an event, an action without a handler, data that does not fit
the handler's parameters or their annotations — raises
:class:`~eventrabbit.errors.InvalidMessage` (bad input, never retried). What the handler
itself raises propagates as it is (a failure, retried).
"""

from __future__ import annotations

from typing import Any

from aiormq.abc import DeliveredMessage

from . import envelope
from .errors import InvalidData, InvalidMessage
from .fanout import DeliveryRecord
from .registry import Handler

_decode = envelope.decode
_decode_content = envelope.decode_content


async def dispatch(
    handlers: dict[str, Handler],
    message: DeliveredMessage,
    max_body: int,
    record: DeliveryRecord | None = None,
) -> Any:
    """Decode ``message``, run the handler of its action and return the result.

    :param record: the delivery's hooks, told right before the handler's body runs.
    :raises InvalidMessage: the message cannot be handled as it is.
    """
    action, data = _read(message, max_body)
    handler = handlers.get(action)
    if handler is None:
        raise InvalidMessage(f"no handler for action {action!r}")
    try:
        data = handler.check(data)
    except InvalidData as exc:
        raise InvalidMessage(f"data does not fit handler {action!r}: {exc}") from None
    try:
        # Calling an async function binds the arguments before its body runs: a TypeError here
        # is data the handler cannot be called with, not a failure inside it.
        running = handler.func(**data)
    except TypeError as exc:
        raise InvalidMessage(f"data does not fit handler {action!r}: {exc}") from None
    if record is not None:
        record.start(action)
    result = await running
    if handler.after is not None:
        # What was published (a Decimal as its string, a model dumped) is what is replied.
        result = await handler.after(result)
    return result


def _read(message: DeliveredMessage, max_body: int) -> tuple[str, Any]:
    body = message.body
    if len(body) > max_body:
        raise InvalidMessage(f"body of {len(body)} bytes exceeds max_body_size ({max_body})")
    encoding = message.header.properties.content_encoding
    if encoding:
        body = _decode_content(body, encoding, max_body)
    return _decode(body)


def action_of(message: DeliveredMessage, max_body: int) -> str | None:
    """The action ``message`` names, or ``None`` if it cannot be read (for logs and hooks of
    a failure: read again rather than carried along the hot path)."""
    try:
        return _read(message, max_body)[0]
    except InvalidMessage:
        return None
