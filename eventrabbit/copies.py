"""What a wire-faithful copy of a message needs besides its edited properties: a header frame
that fits the connection's ``frame_max``, and a way to publish the exact bytes through aiormq.

Theory of operation
-------------------
A copy (a retry or a dead letter) starts from the property bytes the original arrived with
(:class:`~eventrabbit.wire.Stashed`, or pamqp's own encoding where it decoded them and encodes
them back the same), edited as :class:`~eventrabbit.properties.WireProperties`:
:func:`faithful` removes the broker's headers, writes eventrabbit's own (those the
:class:`~eventrabbit.failures.Copy` planned) and moves a foreign ``user_id`` into a header.
Every other header keeps its AMQP type and value, byte for byte, whatever pamqp could decode.

:func:`fit` then leaves out headers, largest first, until the content-header frame fits
``frame_max`` — the broker closes the connection on a larger frame — never those the caller
must keep, and says which it left out (in a ``note`` header, and in its result).

:class:`RawProperties` is the seam into aiormq: pamqp's ``ContentHeader.marshal()`` asks its
properties to ``marshal()`` themselves, so a ``Basic.Properties`` whose ``marshal()`` returns
the bytes built here goes out exactly as built, through the channel's ordinary
``basic_publish`` with its publisher confirms and returns.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from pamqp import commands as spec

from .failures import (
    BROKER_HEADERS,
    ERROR_HEADER,
    MAX_REASON_BYTES,
    ORIGINAL_USER_HEADER,
    Copy,
    bounded,
)
from .properties import WireProperties, parse_properties

#: The header of a copy that names the headers left out to fit ``frame_max``.
DROPPED_HEADER = "x-eventrabbit-dropped-headers"

#: A content-header frame's bytes besides its property list: type, channel, size, end octet
#: (8) and class, weight, body size (12).
HEADER_FRAME_OVERHEAD = 20


@dataclass(slots=True, frozen=True)
class Fitted:
    """Properties that fit a frame, and the names of the headers left out (largest first)."""

    properties: WireProperties
    dropped: tuple[str, ...] = ()


#: How long a ``note`` header listing dropped headers may get, in bytes.
NOTE_MAX = 1024


def fit(
    properties: WireProperties,
    frame_max: int,
    *,
    keep: Collection[str] = (),
    note: str | None = None,
) -> Fitted:
    """Leave out header entries, largest first, until the content-header frame of
    ``properties`` fits ``frame_max`` (``0``: no limit). The body does not matter: it travels
    in frames of its own.

    :param keep: header keys never left out (eventrabbit's own failure headers).
    :param note: a header key that, when anything is left out, is set to the names left out
        (comma-separated, at most :data:`NOTE_MAX` bytes) — its room is made first.
    :raises ValueError: even without every header it may leave out, the frame is too big:
        the kept headers are larger than ``frame_max`` allows.
    """
    size = HEADER_FRAME_OVERHEAD + len(properties.encode())
    if not frame_max or size <= frame_max:
        return Fitted(properties)
    entries = properties.headers or ()
    protected = {key.encode() for key in keep}
    if note is not None:
        protected.add(note.encode())
        size -= sum(e.size for e in entries if e.key == note.encode())  # replaced below
    order = sorted(
        (i for i, e in enumerate(entries) if e.key not in protected),
        key=lambda i: entries[i].size,
        reverse=True,  # a stable sort: among equals, the earlier entry goes first
    )
    gone: list[int] = []
    for index in order:
        gone.append(index)
        size -= entries[index].size
        listed = _note_text([entries[i].name for i in gone])
        if size + (_note_size(note, listed) if note is not None else 0) <= frame_max:
            break
    else:
        raise ValueError(
            f"the properties take {size} bytes of a {frame_max}-byte frame without every "
            f"header that may be left out: the kept headers {sorted(keep)} are too large"
        )
    left_out = set(gone)
    fitted = replace(
        properties, headers=tuple(e for i, e in enumerate(entries) if i not in left_out)
    )
    if note is not None:
        fitted = fitted.with_headers({note: listed})
    return Fitted(fitted, tuple(entries[i].name for i in gone))


def _note_text(names: list[str]) -> str:
    listed = ", ".join(names)
    if len(listed.encode()) <= NOTE_MAX:
        return listed
    tail = f" ... ({len(names)} in all)"
    return listed.encode()[: NOTE_MAX - len(tail)].decode("utf-8", "ignore") + tail


def _note_size(note: str, listed: str) -> int:
    return 2 + len(note.encode()) + 4 + len(listed.encode())


class RawProperties(spec.Basic.Properties):
    """``Basic.Properties`` that marshal to exactly the bytes of ``wire``.

    The attributes are set as far as the bytes decode (:meth:`WireProperties.decoded`), for
    logging and for aiormq, which reads ``message_id`` to match a returned message to its
    publish. aiormq gives a message without one a ``message_id`` before it publishes; that
    id goes out too (setting any other attribute changes nothing on the wire).
    """

    def __init__(self, wire: WireProperties) -> None:
        super().__init__()
        for name, value in wire.decoded().items():
            setattr(self, name, value)
        self.wire = wire
        self._encoded = wire.encode()
        self._wire_message_id = self.message_id

    def marshal(self) -> bytes:
        """The property list: ``wire``'s bytes (with aiormq's ``message_id``, if it set one)."""
        if self.message_id == self._wire_message_id:
            return self._encoded
        message_id = None if self.message_id is None else self.message_id.encode()
        return self.wire.replace("message_id", message_id).encode()


def faithful(raw: bytes, copy: Copy, frame_max: int) -> Copy:
    """``copy`` with properties made from ``raw``, the property list (flag word first) the
    original arrived with: the broker's headers removed, ``copy.extra`` written, a moved
    ``user_id`` moved, then :func:`fit` to ``frame_max`` (``copy.extra`` always kept). When
    headers had to be left out, ``x-eventrabbit-error`` says so (and
    :data:`DROPPED_HEADER` names them).

    :raises ValueError: ``raw`` is not a property list, or eventrabbit's headers alone do not
        fit a frame.
    """
    wire = parse_properties(raw).without_headers(BROKER_HEADERS)
    extra = dict(copy.extra)
    if ORIGINAL_USER_HEADER in extra:
        extra[ORIGINAL_USER_HEADER] = wire.get("user_id") or extra[ORIGINAL_USER_HEADER]
        wire = wire.replace("user_id", None)
    fitted = fit(wire.with_headers(extra), frame_max, keep=extra, note=DROPPED_HEADER)
    decision = copy.decision
    if fitted.dropped:
        said = f" (headers left out to fit frame_max: see {DROPPED_HEADER})"
        decision = replace(
            decision, reason=bounded(decision.reason, MAX_REASON_BYTES - len(said)) + said
        )
        if ERROR_HEADER in extra:
            extra[ERROR_HEADER] = decision.reason
            fitted = fit(wire.with_headers(extra), frame_max, keep=extra, note=DROPPED_HEADER)
    return replace(copy, decision=decision, properties=RawProperties(fitted.properties))
