"""Handlers and the action table.

Everything about a handler that dispatch needs — which ``data`` keys it accepts and requires,
and the compiled check of its annotations — is computed once, at registration, so the hot path
does no signature inspection. The decorators that register handlers are
:class:`eventrabbit.events.Events`'.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .annotations import parameters_shape, result_shape
from .errors import ConfigurationError, DuplicateHandlerError, InvalidData, InvalidResult
from .shapes import ObjectOf, Shape
from .validate import compile_check, compile_parameters

#: What a handler is: an async function called with ``data``'s keys as keyword arguments.
HandlerFunction = Callable[..., Awaitable[Any]]
#: What runs after a handler returned, with its result (``@events.function`` publishes it);
#: what it returns is the result from then on (replied to ``reply_to``).
AfterHandler = Callable[[Any], Awaitable[Any]]
#: Checks ``data`` against a handler's parameters, converts it in place and returns it.
DataCheck = Callable[[dict[str, Any]], dict[str, Any]]
#: Checks a result about to be published and returns what to publish.
ResultCheck = Callable[[Any], Any]


@dataclass(slots=True, frozen=True)
class Handler:
    """A registered handler, the ``data`` it takes and what it returns.

    :param accepted: keyword names it accepts; ``None`` when it takes ``**kwargs``.
    :param required: keyword names without a default.
    :param after: awaited with the result once ``func`` returned (publishing it).
    :param data_shape: its parameters as an object (``cls`` ``None``), from their annotations
        (unchecked ones where ``check=False``).
    :param result_shape: its return annotation's shape; ``None`` without one or unchecked.
    :param check: checks and converts ``data`` (:class:`~eventrabbit.errors.InvalidData`).
    """

    action: str
    func: HandlerFunction
    accepted: frozenset[str] | None
    required: frozenset[str]
    after: AfterHandler | None = None
    data_shape: ObjectOf = field(default_factory=lambda: ObjectOf("", (), frozenset()))
    result_shape: Shape | None = None
    check: DataCheck = field(default=lambda data: data, repr=False)

    @classmethod
    def of(
        cls,
        action: str,
        func: HandlerFunction,
        after: AfterHandler | None = None,
        *,
        check: bool = True,
    ) -> Handler:
        """Inspect ``func`` once: what it accepts and, unless ``check`` is false, what its
        annotations say its data and result are.

        :raises ConfigurationError: a parameter ``data`` cannot be passed to, or an
            annotation that cannot be checked.
        """
        for param in inspect.signature(func).parameters.values():
            if param.kind is param.POSITIONAL_ONLY and param.default is param.empty:
                raise ConfigurationError(
                    f"handler for {action!r} has positional-only parameter {param.name!r}; "
                    "event data is passed by keyword"
                )
        shape = parameters_shape(action, func, check=check)
        fits = None if shape.extra else frozenset(name for name, _ in shape.fields)
        result = result_shape(action, func, check=check)
        checker = compile_parameters(shape)
        return cls(action, func, fits, shape.required, after, shape, result, checker)

    def misfit(self, data: dict[str, Any]) -> str | None:
        """Why ``data`` does not fit the handler, or ``None`` if it does (``data`` is left as
        it is; dispatch runs :attr:`check` itself)."""
        try:
            self.check(dict(data))
        except InvalidData as exc:
            return f"data does not fit handler {self.action!r}: {exc}"
        return None


def result_check(action: str, func: Callable[..., Any], check: bool) -> ResultCheck | None:
    """What checks the result ``func`` publishes as ``action`` against its return annotation
    and makes it ready for orjson (a ``Decimal`` as its string, a model dumped); ``None`` when
    nothing is checked. It raises :class:`InvalidResult`.
    """
    shape = result_shape(action, func, check=check)
    checker = None if shape is None else compile_check(shape, outbound=True)
    if checker is None:
        return None
    subject = f"the result of {func.__qualname__}() for {action!r}"

    def fit(result: Any) -> Any:
        try:
            return checker(result)
        except InvalidData as exc:
            raise InvalidResult(subject, exc.problem, exc.path) from None

    return fit


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
