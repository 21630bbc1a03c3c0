"""The properties of every message eventrabbit publishes, encoded without pamqp's generic walk.

Theory of operation
-------------------
pamqp encodes a content header's properties by walking all fourteen of them and calling an
encoder per property by type name; for a publish that walk costs about as much as the rest of
eventrabbit's own work on it. :class:`Properties` is pamqp's ``Basic.Properties`` — aiormq
and pamqp take it as one — whose :meth:`~Properties.marshal` writes the properties eventrabbit
sets (content type, headers, delivery mode, correlation id, reply-to, expiration, message id,
timestamp) in straight-line code, to the very bytes pamqp would write
(``tests/unit/test_frame_encode.py`` encodes the same properties both ways and compares).

Anything else goes to pamqp's own encoder: a property eventrabbit never sets (content
encoding, priority, type, user id, app id, cluster id), a value of an unexpected type, a
timestamp that is not an aware UTC ``datetime``, a string too long for a short string —
pamqp then encodes it, or raises what it finds wrong.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from pamqp import commands as spec
from pamqp import encode as pamqp_encode

_FLAGS = struct.Struct(">H").pack
_TIMESTAMP = struct.Struct(">Q").pack


class Properties(spec.Basic.Properties):
    """pamqp's ``Basic.Properties``, encoded in straight-line code (see the module)."""

    def marshal(self) -> bytes:
        """The property flags and values, as pamqp's ``marshal`` writes them."""
        if (
            _set(self.content_encoding)
            or self.priority is not None
            or _set(self.message_type)
            or _set(self.user_id)
            or _set(self.app_id)
            or _set(self.cluster_id)
        ):
            return super().marshal()
        try:
            return self._straight()
        except (TypeError, ValueError, struct.error):
            return super().marshal()  # pamqp encodes it, or says what is wrong

    def _straight(self) -> bytes:
        flags = 0
        parts = [b""]
        if _set(self.content_type):
            flags |= 0x8000
            parts.append(_short(self.content_type))
        headers, mode = self.headers, self.delivery_mode
        if headers is not None and _set(headers):
            flags |= 0x2000
            parts.append(pamqp_encode.field_table(headers))
        if mode is not None:
            flags |= 0x1000
            parts.append(bytes((mode,)))
        for flag, text in (
            (0x0400, self.correlation_id),
            (0x0200, self.reply_to),
            (0x0100, self.expiration),
            (0x0080, self.message_id),
        ):
            if _set(text):
                flags |= flag
                parts.append(_short(text))
        stamp = self.timestamp
        if _set(stamp):
            if type(stamp) is not datetime or stamp.tzinfo is not UTC:
                raise TypeError("not an aware UTC datetime")
            flags |= 0x0040
            parts.append(_TIMESTAMP(int(stamp.timestamp())))
        parts[0] = _FLAGS(flags)
        return b"".join(parts)


def _set(value: object) -> bool:
    # pamqp writes a property that is neither None nor the empty string.
    return value is not None and value != ""


def _short(value: object) -> bytes:
    if type(value) is not str:
        raise TypeError("not a str")
    encoded = value.encode("utf-8")
    if len(encoded) > 255:
        raise ValueError("too long for a short string")
    return bytes((len(encoded),)) + encoded
