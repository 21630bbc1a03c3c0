"""The wire format, both directions, as UTF-8 JSON (orjson):

- events: ``{"action": str, "data": object}``. Every way a body can be unusable becomes one
  :class:`~eventrabbit.errors.InvalidMessage` whose reason is what the dead-letter header
  ``x-eventrabbit-error`` says;
- replies to ``reply_to`` requests: ``{"data": result}``, or ``{"error": {"type": str,
  "message": str}}`` when the request failed for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .errors import InvalidMessage, RemoteError, RPCError

_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError


def decode(body: bytes) -> tuple[str, dict[str, Any]]:
    """Parse an event body into ``(action, data)``.

    :raises InvalidMessage: the body is not JSON (or not UTF-8), not an object, or its
        ``action`` is not a string or its ``data`` not an object.
    """
    try:
        event = _loads(body)
    except _JSONDecodeError as exc:
        raise InvalidMessage(f"body is not valid JSON: {exc}") from None
    # The happy path is two type checks; the detailed reasons are built only on failure.
    if type(event) is dict:
        action = event.get("action")
        data = event.get("data")
        if type(action) is str and type(data) is dict:
            return action, data
    raise InvalidMessage(_reason(event))


def _reason(event: object) -> str:
    if not isinstance(event, dict):
        return f"body is a JSON {_json_type(event)}, not an object"
    if "action" not in event:
        return 'body has no "action"'
    if not isinstance(event["action"], str):
        return f'"action" is a JSON {_json_type(event["action"])}, not a string'
    if "data" not in event:
        return 'body has no "data"'
    return f'"data" is a JSON {_json_type(event["data"])}, not an object'


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def encode(action: str, data: Any) -> bytes:
    """Serialise an event. ``data`` may be any JSON value.

    :raises TypeError: ``data`` is not JSON-serialisable.
    """
    try:
        return _dumps({"action": action, "data": data})
    except TypeError as exc:
        raise TypeError(
            f"the result for action {action!r} is not JSON-serialisable: {exc}"
        ) from None


def encode_reply(result: Any) -> bytes:
    """The reply body of a handled request: ``{"data": result}``.

    :raises TypeError: ``result`` is not JSON-serialisable.
    """
    return _dumps({"data": result})


def encode_error_reply(error: Mapping[str, str]) -> bytes:
    """The reply body of a request that failed for good: ``{"error": error}``, where
    ``error`` is ``{"type": <exception class>, "message": <text>}``."""
    return _dumps({"error": dict(error)})


def decode_reply(body: bytes) -> Any:
    """The result a reply carries.

    :raises RemoteError: an error reply (its ``type`` and ``message``).
    :raises RPCError: a body that is not a reply.
    """
    try:
        reply = _loads(body)
        if "error" in reply:
            error = reply["error"]
            raise RemoteError(str(error["type"]), str(error["message"]))
        return reply["data"]
    except (_JSONDecodeError, TypeError, KeyError) as exc:
        raise RPCError(f"unreadable reply: {type(exc).__name__}: {exc}") from None
