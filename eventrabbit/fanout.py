"""Calling a service's hooks: fan-out to each, in order, with their errors contained.

Theory of operation
-------------------
The library holds a :class:`HookSet` only when hooks were given (``None`` otherwise, so the
hot path's whole cost without hooks is one ``is not None`` test). Each piece of work gets a
*record* — :class:`DeliveryRecord` or :class:`Span` — that keeps every hook's state between
its ``*_started`` and ``*_finished`` calls. A hook that raises is logged at ERROR the first
time for each of its methods and at DEBUG after that; a hook whose ``*_started`` raised is
left out of that record's ``*_finished``. Nothing a hook does reaches the work it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from types import MappingProxyType
from typing import Any

from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from .connection import as_urls, censor
from .errors import UnroutableError
from .failures import Copy, retry_count
from .hooks import Hooks
from .observed import (
    Call,
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Delivery,
    FailureDecision,
    Outcome,
    Publish,
    Result,
)

log = logging.getLogger(__name__)

#: The state of a hook whose ``*_started`` raised: it is not told the end.
_BROKEN = object()
_NO_HEADERS: MappingProxyType[str, Any] = MappingProxyType({})
#: The host and port of a broker node (``None`` where unknown).
Server = tuple[str | None, int | None]


class HookSet:
    """The hooks of one service, called in order, their exceptions logged and contained."""

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        self.hooks = tuple(hooks)
        #: Exceptions hooks raised so far.
        self.errors = 0
        self._logged: set[tuple[int, str]] = set()

    def contain(self, hook: Hooks, method: str, exc: Exception) -> None:
        """Log what ``hook.method`` raised: with its traceback the first time, then briefly."""
        self.errors += 1
        key = (id(hook), method)
        if key in self._logged:
            log.debug("hook %r raised in %s again: %r", hook, method, exc)
            return
        self._logged.add(key)
        log.error(
            "hook %r raised in %s (ignored; later errors of it are logged at DEBUG)",
            hook,
            method,
            exc_info=exc,
            extra={"hook": type(hook).__name__},
        )

    def start(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` of each hook; their states, in order."""
        if len(self.hooks) == 1:  # the usual case, per message
            try:
                return [getattr(self.hooks[0], method)(*args)]
            except Exception as exc:  # noqa: BLE001 — a hook must not break the work
                self.contain(self.hooks[0], method, exc)
                return [_BROKEN]
        states: list[Any] = []
        for hook in self.hooks:
            try:
                states.append(getattr(hook, method)(*args))
            except Exception as exc:  # noqa: BLE001 — a hook must not break the work
                self.contain(hook, method, exc)
                states.append(_BROKEN)
        return states

    def finish(self, method: str, states: list[Any], *args: Any) -> None:
        """Call ``method`` of each hook with its state, in reverse order."""
        hooks = self.hooks
        if len(hooks) == 1 and states[0] is not _BROKEN:  # the usual case, per message
            try:
                getattr(hooks[0], method)(states[0], *args)
            except Exception as exc:  # noqa: BLE001 — a hook must not break the work
                self.contain(hooks[0], method, exc)
            return
        for index in range(len(hooks) - 1, -1, -1):  # per message: cheaper than zip(reversed)
            state = states[index]
            if state is _BROKEN:
                continue
            try:
                getattr(hooks[index], method)(state, *args)
            except Exception as exc:  # noqa: BLE001 — a hook must not break the work
                self.contain(hooks[index], method, exc)

    def tell(self, method: str, *args: Any) -> None:
        """Call ``method`` of each hook (an event without an end)."""
        for hook in self.hooks:
            try:
                getattr(hook, method)(*args)
            except Exception as exc:  # noqa: BLE001 — a hook must not break the work
                self.contain(hook, method, exc)

    def connection(self, event: ConnectionEvent) -> None:
        """A connection changed."""
        self.tell("connection_changed", event)

    def own_connection(
        self, role: ConnectionRole, url: str | Sequence[str]
    ) -> Callable[[ConnectionState, str | None], None]:
        """What tells the hooks about the publisher's or RPC client's connection to ``url``."""
        broker = ", ".join(censor(one) for one in as_urls(url))

        def tell(state: ConnectionState, reason: str | None) -> None:
            self.connection(ConnectionEvent(state, None, broker, reason, role))

        return tell

    def publish(self, publish: Publish, headers: dict[str, Any]) -> Span:
        """A publish starts: the hooks may add to ``headers``."""
        return Span(
            self, "publish_finished", publish, self.start("publish_started", publish, headers)
        )

    async def published(
        self,
        publish: Publish,
        properties: spec.Basic.Properties,
        sending: Awaitable[bool | None],
    ) -> None:
        """Tell the hooks about a publish around ``sending`` (a coroutine not started yet, so
        the headers they add to ``properties`` go out with it); ``False``: unroutable."""
        headers = properties.headers = dict(properties.headers or {})  # never the caller's
        span = self.publish(publish, headers)
        try:
            routed = await sending
        except BaseException as exc:
            span.end(
                Outcome.UNROUTABLE if isinstance(exc, UnroutableError) else Outcome.FAILED, exc
            )
            raise
        span.end(Outcome.UNROUTABLE if routed is False else Outcome.CONFIRMED)

    def call(self, call: Call) -> Span:
        """An RPC call starts."""
        return Span(self, "call_finished", call, self.start("call_started", call))


class Span:
    """A publish or call between its start and its end."""

    __slots__ = ("_finish", "_hooks", "_started", "_states", "subject")

    def __init__(self, hooks: HookSet, finish: str, subject: Publish | Call, states: list[Any]):
        self._hooks, self._finish, self.subject, self._states = hooks, finish, subject, states
        self._started = perf_counter()

    def end(self, outcome: Outcome, error: BaseException | None = None) -> None:
        """The work ended: tell the hooks."""
        result = Result(outcome, perf_counter() - self._started, error)
        self._hooks.finish(self._finish, self._states, self.subject, result)


class DeliveryRecord:
    """One delivery between its arrival and its outcome.

    :meth:`start` is called right before the handler's body runs (by
    :func:`eventrabbit.dispatch.dispatch`); a delivery that never gets there (bad input) is
    started when it ends.
    """

    __slots__ = ("_at", "_hooks", "_message", "_queue", "_server", "_states", "delivery", "error")

    def __init__(
        self, hooks: HookSet, queue: str, message: DeliveredMessage, server: Server
    ) -> None:
        self._hooks, self._queue, self._message, self._server = hooks, queue, message, server
        self._at = perf_counter()
        self._states: list[Any] | None = None
        self.delivery: Delivery | None = None
        #: What the handler raised, or why the delivery was left unacked.
        self.error: BaseException | None = None

    @property
    def action(self) -> str | None:
        """The action, once the handler was found."""
        return None if self.delivery is None else self.delivery.action

    def start(self, action: str | None) -> None:
        """The handler of ``action`` is about to run."""
        message = self._message
        properties = message.header.properties
        headers = properties.headers
        deliver: spec.Basic.Deliver = message.delivery  # type: ignore[assignment]  # consumed
        # Positional, in Delivery's field order: built per message.
        self.delivery = delivery = Delivery(
            self._queue,
            deliver.exchange or "",
            deliver.routing_key or "",
            action,
            properties.message_id,
            properties.correlation_id,
            retry_count(headers) if headers else 0,
            bool(deliver.redelivered),
            MappingProxyType(headers) if headers else _NO_HEADERS,
            deliver.delivery_tag or 0,
            *self._server,
        )
        self._states = self._hooks.start("delivery_started", delivery)

    def failed(self, action: str | None, exc: BaseException, copy: Copy, outcome: Outcome) -> None:
        """The delivery failed with ``exc`` and ``copy`` is published (``outcome`` says which).

        A delivery that never got to its handler (bad input) is started here, with the
        ``action`` it names if it could be read.
        """
        self.error = exc
        if self._states is None:
            self.start(action)
        properties = self._message.header.properties
        decision = FailureDecision(
            queue=self._queue,
            action=action,
            message_id=properties.message_id,
            retry_count=copy.retries,
            outcome=outcome,
            target=copy.queue,
            reason=copy.decision.reason,
            error=exc,
        )
        self._hooks.tell("failure_decided", decision)

    def finish(self, outcome: Outcome) -> None:
        """The delivery ended (one that never got to its handler is started first)."""
        if self._states is None:
            self.start(None)
        assert self._states is not None
        assert self.delivery is not None
        result = Result(outcome, perf_counter() - self._at, self.error)
        self._hooks.finish("delivery_finished", self._states, self.delivery, result)
