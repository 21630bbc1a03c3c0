"""Handlers and the action table.

Everything about a handler that dispatch needs — which ``data`` keys it accepts and requires —
is computed once, at registration, so the hot path does no signature inspection. The
decorators that register handlers are :class:`eventrabbit.events.Events`'.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, DuplicateHandlerError

#: What a handler is: an async function called with ``data``'s keys as keyword arguments.
HandlerFunction = Callable[..., Awaitable[Any]]
#: What runs after a handler returned, with its result (``@events.function`` publishes it).
AfterHandler = Callable[[Any], Awaitable[None]]


@dataclass(slots=True, frozen=True)
class Handler:
    """A registered handler and the ``data`` keys it can take.

    :param accepted: keyword names it accepts; ``None`` when it takes ``**kwargs``.
    :param required: keyword names without a default.
    :param after: awaited with the result once ``func`` returned (publishing it).
    """

    action: str
    func: HandlerFunction
    accepted: frozenset[str] | None
    required: frozenset[str]
    after: AfterHandler | None = None

    @classmethod
    def of(cls, action: str, func: HandlerFunction, after: AfterHandler | None = None) -> Handler:
        """Inspect ``func`` once and record what it accepts."""
        accepted: set[str] = set()
        required: set[str] = set()
        takes_any = False
        for param in inspect.signature(func).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                takes_any = True
            elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                accepted.add(param.name)
                if param.default is param.empty:
                    required.add(param.name)
            elif param.kind is param.POSITIONAL_ONLY and param.default is param.empty:
                raise ConfigurationError(
                    f"handler for {action!r} has positional-only parameter {param.name!r}; "
                    "event data is passed by keyword"
                )
        fits = None if takes_any else frozenset(accepted)
        return cls(action, func, fits, frozenset(required), after)

    def misfit(self, data: dict[str, Any]) -> str | None:
        """Why ``data`` cannot be passed as keyword arguments, or ``None`` if it can."""
        keys = data.keys()
        if self.accepted is not None and not keys <= self.accepted:
            unknown = ", ".join(sorted(keys - self.accepted))
            return f"data does not fit handler {self.action!r}: unexpected keys {unknown}"
        if not self.required <= keys:
            missing = ", ".join(sorted(self.required - keys))
            return f"data does not fit handler {self.action!r}: missing keys {missing}"
        return None


class Registry:
    """The action table: one handler per action."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def add(self, handler: Handler) -> None:
        """Register ``handler``.

        :raises DuplicateHandlerError: the action has a handler already.
        """
        if handler.action in self.handlers:
            raise DuplicateHandlerError(handler.action)
        self.handlers[handler.action] = handler
