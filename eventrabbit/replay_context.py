"""What a handler can know about the event it handles during a replay, and the switch that
holds back what it publishes.

Theory of operation
-------------------
A replay runs each handler inside a :class:`Replaying` context (a ``ContextVar``, so it
reaches everything the handler awaits, and nothing that runs beside it). A handler calls
:func:`replaying` to tell a replayed event from a live delivery; ``None`` means live. The
offset it carries is what a handler stores in its own database transaction to keep its
checkpoint exactly in step with its projection.

Publishing checks :func:`held_back` first: during a replay that did not opt in to side
effects, a publish is counted instead of sent, and returns as if it had been confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(slots=True)
class Replaying:
    """The event being replayed.

    One per replay, its ``offset`` moved on from event to event (a replay handles one at a
    time).

    :param stream: the stream it comes from.
    :param offset: its offset in the stream (``-1`` before the first).
    :param side_effects: whether what the handler publishes is sent.
    :param held_back: publishes not sent so far in this replay.
    """

    stream: str
    offset: int = -1
    side_effects: bool = False
    held_back: int = 0


_current: ContextVar[Replaying | None] = ContextVar("eventrabbit_replaying", default=None)


def replaying() -> Replaying | None:
    """The replayed event the running handler handles; ``None`` for a live delivery."""
    return _current.get()


def replay_offset() -> int | None:
    """The stream offset of the event being replayed (``None`` outside a replay): save it in
    the same database transaction as the projection, and load it back through a checkpoint
    store, so both commit together."""
    current = _current.get()
    return None if current is None else current.offset


def held_back() -> bool:
    """Whether a publish is to be held back (and counted) instead of sent."""
    current = _current.get()
    if current is None or current.side_effects:
        return False
    current.held_back += 1
    return True


def held_back_items(items: Iterable[object]) -> int | None:
    """For a bulk publish: ``None`` when it is to be sent; else how many items were held back
    (and counted)."""
    current = _current.get()
    if current is None or current.side_effects:
        return None
    count = sum(1 for _ in items)
    current.held_back += count
    return count


def enter(value: Replaying) -> Token[Replaying | None]:
    """Make ``value`` the current replayed event; returns the token for :func:`leave`."""
    return _current.set(value)


def leave(token: Token[Replaying | None]) -> None:
    """Undo :func:`enter`."""
    _current.reset(token)
