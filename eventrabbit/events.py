"""``events``: the decorators that register handlers and publish results, and the calls that
publish an event or make an RPC call without a decorator.

``@events.consumer``, ``@events.producer`` and ``@events.function`` are one decorator factory
with two independent parts: *register* the function for an action (in the
:class:`~eventrabbit.registry.Registry`), and *publish* its result (through the
:class:`~eventrabbit.publisher.Publisher`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from .annotations import result_shape
from .bulk import DEFAULT_WINDOW, BulkResult, ItemResult, publish_many
from .errors import ConfigurationError
from .observed import Outcome
from .publisher import Publisher
from .registry import Handler, Registry, result_check
from .replay_context import held_back, held_back_items
from .rpc import DEFAULT_CALL_TIMEOUT, RPCClient
from .schema import action_schemas
from .shapes import AnyShape, Shape

P = ParamSpec("P")
R = TypeVar("R")
AsyncFunction = Callable[P, Awaitable[R]]


@dataclass(slots=True, frozen=True)
class Destination:
    """Where a result is published, and as which action."""

    exchange_name: str
    action: str
    key: str = ""
    mandatory: bool = False


@dataclass(slots=True, frozen=True)
class Produced:
    """Bookkeeping: an action a producer or function publishes, for its schema and the
    service's AsyncAPI document (:meth:`Events.schemas`, :func:`eventrabbit.asyncapi.asyncapi`)."""

    destination: Destination
    func: Callable[..., Any]


class Events:
    """The decorators of one service: ``@events.consumer``, ``.producer`` and ``.function``.

    Made by :func:`eventrabbit.build_event_dependencies`; its publisher is shared by every
    producer and function it decorates.
    """

    def __init__(self, registry: Registry, publisher: Publisher, rpc: RPCClient) -> None:
        self.registry = registry
        self.publisher = publisher
        self.rpc = rpc
        #: What the producers and functions decorated so far publish, in decoration order.
        self.produced: list[Produced] = []

    def consumer(
        self, action: str, *, check: bool = True
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Handle events of ``action``; ``data``'s keys are the function's keyword arguments.

        ``data`` that does not fit the parameters' annotations is bad input (dead-lettered);
        ``check=False`` leaves the annotations unchecked (the keys are checked still).
        """
        return self._decorator(action, None, check)

    def producer(
        self,
        exchange_name: str,
        action: str,
        key: str | None = None,
        *,
        mandatory: bool = False,
        check: bool = True,
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Publish the function's return value as ``{"action": action, "data": result}``.

        The call returns once the broker confirmed the event. ``mandatory=True`` raises
        :class:`~eventrabbit.errors.UnroutableError` when no queue receives it. A result that
        does not fit the return annotation raises :class:`~eventrabbit.errors.InvalidResult`
        and publishes nothing (``check=False``: not checked).
        """
        destination = Destination(exchange_name, action, key or "", mandatory)
        return self._decorator(None, destination, check)

    def function(
        self,
        action: str,
        exchange_name: str,
        action_reply: str | None = None,
        key: str | None = None,
        *,
        mandatory: bool = False,
        check: bool = True,
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Handle ``action`` and publish the result as ``action_reply`` (default: ``action``).

        Data and result are checked as by ``consumer`` and ``producer``; a result that does not
        fit fails the delivery like any other exception (retried, then dead-lettered).
        """
        reply = Destination(exchange_name, action_reply or action, key or "", mandatory)
        return self._decorator(action, reply, check)

    async def publish(
        self, exchange_name: str, action: str, data: Any, key: str = "", *, mandatory: bool = False
    ) -> str:
        """Publish one event without a decorator; returns its message id (``""`` when a
        replay held it back: :mod:`eventrabbit.replay_context`)."""
        if held_back():
            return ""
        return await self.publisher.publish_event(
            exchange_name, action, data, routing_key=key, mandatory=mandatory
        )

    async def publish_many(
        self,
        exchange_name: str,
        action: str,
        items: Iterable[Any],
        key: str = "",
        *,
        mandatory: bool = False,
        window: int = DEFAULT_WINDOW,
    ) -> BulkResult:
        """Publish one event per item, ``window`` confirmed publishes in flight at once; every
        item is accounted for in the result (see :mod:`eventrabbit.bulk`)."""
        if (held := held_back_items(items)) is not None:  # a replay: counted, not sent
            return BulkResult([ItemResult(i, Outcome.CONFIRMED, "") for i in range(held)])
        return await publish_many(
            self.publisher,
            exchange_name,
            action,
            items,
            key=key,
            mandatory=mandatory,
            window=window,
        )

    async def call(
        self,
        action: str,
        data: Any,
        *,
        exchange_name: str = "",
        key: str = "",
        timeout: float = DEFAULT_CALL_TIMEOUT,  # noqa: ASYNC109 (the documented API)
        expiration: float | None = None,
    ) -> Any:
        """Call a remote handler and return its result (RPC over direct reply-to).

        See :meth:`eventrabbit.rpc.RPCClient.call` for the parameters and errors.
        """
        return await self.rpc.call(
            action,
            data,
            exchange_name=exchange_name,
            key=key,
            timeout=timeout,
            expiration=expiration,
        )

    async def close(self) -> None:
        """Close the publishing and RPC connections (the next use reopens them)."""
        await self.publisher.close()
        await self.rpc.close()

    def schemas(self) -> dict[str, dict[str, Any]]:
        """Each action's JSON Schemas (draft 2020-12), from the handlers' and producers'
        annotations: ``{action: {"data": ..., "result": ..., "published": ...}}`` (see
        :func:`eventrabbit.schema.action_schemas` for which keys an action has)."""
        consumed = {a: (h.data_shape, h.result_shape) for a, h in self.registry.handlers.items()}
        published = [(d.action, shape) for d, shape in self.published_shapes()]
        return action_schemas(consumed, published)

    def published_shapes(self) -> list[tuple[Destination, Shape]]:
        """Where each producer and function publishes, and the shape of its result (as its
        return annotation says; unchecked without one)."""
        handlers = {handler.func: handler for handler in self.registry.handlers.values()}
        shapes: list[tuple[Destination, Shape]] = []
        for one in self.produced:
            handler, action = handlers.get(one.func), one.destination.action
            try:
                shape = handler.result_shape if handler else result_shape(action, one.func)
            except ConfigurationError:  # a producer left unchecked (check=False): publishes any
                shape = None
            shapes.append((one.destination, shape or AnyShape()))
        return shapes

    def _decorator(
        self, action: str | None, destination: Destination | None, check: bool = True
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        def decorate(func: AsyncFunction[P, R]) -> AsyncFunction[P, R]:
            if not inspect.iscoroutinefunction(func):
                raise ConfigurationError(f"{func!r} must be an async function (async def)")
            if destination is None:
                if action is not None:
                    self.registry.add(Handler.of(action, func, check=check))
                return func
            publish = self._publisher_of(destination, result_check(destination.action, func, check))
            self.produced.append(Produced(destination, func))
            if action is not None:
                # The consumer calls func itself (so that data that cannot be bound to its
                # parameters is told apart from a failure inside it), then publishes.
                self.registry.add(Handler.of(action, func, after=publish, check=check))
            return _publishing(func, publish)

        return decorate

    def _publisher_of(
        self, destination: Destination, fit: Callable[[Any], Any] | None = None
    ) -> Callable[[Any], Awaitable[Any]]:
        publish_event = self.publisher.publish_event

        async def publish(result: Any) -> Any:
            """Publish ``result`` and return what was published (orjson-ready)."""
            if fit is not None:
                result = fit(result)  # raises InvalidResult before anything is published
            if held_back():  # a replay that did not opt in to side effects counts it instead
                return result
            await publish_event(
                destination.exchange_name,
                destination.action,
                result,
                routing_key=destination.key,
                mandatory=destination.mandatory,
            )
            return result

        return publish


def _publishing(
    func: AsyncFunction[P, R], publish: Callable[[Any], Awaitable[None]]
) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` that publishes its result before returning it."""

    @functools.wraps(func)
    async def publish_result(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await func(*args, **kwargs)
        await publish(result)
        return result

    return publish_result
