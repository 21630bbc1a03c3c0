"""Open/closed state shared by the in-memory connection and channel, shaped like aiormq's.

aiormq's ``closing`` hands out an *observer* future per call: it completes when the resource
closes (with the reason as its exception), and cancelling it closes nothing. eventrabbit's
consume loop relies on exactly that, so it is reproduced here.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Read the exception once, so asyncio does not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


class Closable:
    """Something that is open until it closes, once, for a reason (an exception)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._closed: asyncio.Future[None] = loop.create_future()
        self._closed.add_done_callback(_retrieve)

    @property
    def is_closed(self) -> bool:
        """Whether it has closed; one whose event loop is gone (an earlier test's) has too."""
        return self._closed.done() or self.loop.is_closed()

    @property
    def closing(self) -> asyncio.Future[None]:
        """A future that completes, with the reason as its exception, when this closes.

        Each access returns an independent observer: cancelling it stops only that observer.
        """
        if self._closed.done():
            return self._closed
        observer: asyncio.Future[None] = self.loop.create_future()

        def on_close(source: asyncio.Future[None]) -> None:
            if observer.done():
                return
            exc = source.exception()
            if exc is None:
                observer.set_result(None)
            else:
                observer.set_exception(exc)

        def on_done(future: asyncio.Future[None]) -> None:
            self._closed.remove_done_callback(on_close)
            _retrieve(future)

        self._closed.add_done_callback(on_close)
        observer.add_done_callback(on_done)
        return observer

    def _mark_closed(self, reason: BaseException) -> bool:
        """Record the close; ``False`` if it was closed already."""
        if self._closed.done():
            return False
        if self.loop.is_closed():
            # A test's event loop is gone: no callbacks can run, just remember the state.
            self._closed = _done_future(self.loop)
            return True
        self._closed.set_exception(reason)
        return True


def _done_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.Future(loop=loop)
    future.cancel()  # cancel() on a closed loop's future schedules nothing when no callbacks
    return future
