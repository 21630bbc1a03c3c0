"""The wire format, both directions, as UTF-8 JSON (orjson):

- events: ``{"action": str, "data": object}``. Every way a body can be unusable becomes one
  :class:`~eventrabbit.errors.InvalidMessage` whose reason is what the dead-letter header
  ``x-eventrabbit-error`` says;
- replies to ``reply_to`` requests: ``{"data": result}``, or ``{"error": {"type": str,
  "message": str}}`` when the request failed for good.

A body may arrive compressed (``content_encoding`` ``gzip``, ``deflate``, ``bzip2`` or ``xz``,
which the standard library decodes); any other encoding is bad input. What eventrabbit writes
is strict JSON: orjson would write ``NaN`` and infinities as ``null`` without a word, so a
value holding them is refused like any other value JSON cannot carry.
"""

from __future__ import annotations

import bz2
import lzma
import math
import zlib
from collections.abc import Callable, Mapping
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

    :raises TypeError: ``data`` is not JSON-serialisable, or holds NaN or an infinity.
    """
    try:
        return _strict_dumps({"action": action, "data": data}, data, "data")
    except TypeError as exc:
        raise TypeError(
            f"the result for action {action!r} is not JSON-serialisable: {exc}"
        ) from None


def _strict_dumps(body: Any, checked: Any, name: str) -> bytes:
    data = _dumps(body)
    # orjson writes NaN and infinities as null: look for them only when a null was written.
    if b"null" in data and (where := _non_finite(checked, name)) is not None:
        raise TypeError(f"{where} is NaN or an infinity, which JSON cannot carry")
    return data


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinity in ``value``, or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


#: Content encodings a body may arrive in, and how each is undone.
_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(),
    "bzip2": lambda: bz2.BZ2Decompressor(),
    "xz": lambda: lzma.LZMADecompressor(),
}
#: Encodings that mean "not compressed" (some clients put the charset there).
_IDENTITY = frozenset({"", "identity", "utf-8", "utf8"})


def decode_content(body: bytes, content_encoding: str, limit: int) -> bytes:
    """Undo a body's ``content_encoding``.

    :param limit: the most bytes the decoded body may have (a small body can inflate a lot).
    :raises InvalidMessage: an encoding the standard library cannot decode, a body that is not
        in it, or one that decodes to more than ``limit`` bytes.
    """
    encoding = content_encoding.strip().lower()
    if encoding in _IDENTITY:
        return body
    make = _DECOMPRESSORS.get(encoding)
    if make is None:
        raise InvalidMessage(f"content_encoding {content_encoding!r} is not supported")
    decompressor = make()
    try:
        # zlib takes a cap on the output; bz2 and lzma a max_length: never inflate past limit.
        if isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor):
            data = decompressor.decompress(body, max_length=limit + 1)
        else:
            data = decompressor.decompress(body, limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise InvalidMessage(f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit:
        raise InvalidMessage(f"{encoding} body decodes to more than max_body_size ({limit})")
    return data


def encode_reply(result: Any) -> bytes:
    """The reply body of a handled request: ``{"data": result}``.

    :raises TypeError: ``result`` is not JSON-serialisable, or holds NaN or an infinity.
    """
    return _strict_dumps({"data": result}, result, "the result")


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
