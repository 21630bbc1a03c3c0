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
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from .errors import ConfigurationError
from .publisher import Publisher
from .registry import Handler, Registry
from .rpc import DEFAULT_CALL_TIMEOUT, RPCClient

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


class Events:
    """The decorators of one service: ``@events.consumer``, ``.producer`` and ``.function``.

    Made by :func:`eventrabbit.build_event_dependencies`; its publisher is shared by every
    producer and function it decorates.
    """

    def __init__(self, registry: Registry, publisher: Publisher, rpc: RPCClient) -> None:
        self.registry = registry
        self.publisher = publisher
        self.rpc = rpc

    def consumer(self, action: str) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Handle events of ``action``; ``data``'s keys are the function's keyword arguments."""
        return self._decorator(action, None)

    def producer(
        self, exchange_name: str, action: str, key: str | None = None, *, mandatory: bool = False
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Publish the function's return value as ``{"action": action, "data": result}``.

        The call returns once the broker confirmed the event. ``mandatory=True`` raises
        :class:`~eventrabbit.errors.UnroutableError` when no queue receives it.
        """
        return self._decorator(None, Destination(exchange_name, action, key or "", mandatory))

    def function(
        self,
        action: str,
        exchange_name: str,
        action_reply: str | None = None,
        key: str | None = None,
        *,
        mandatory: bool = False,
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        """Handle ``action`` and publish the result as ``action_reply`` (default: ``action``)."""
        reply = Destination(exchange_name, action_reply or action, key or "", mandatory)
        return self._decorator(action, reply)

    async def publish(
        self, exchange_name: str, action: str, data: Any, key: str = "", *, mandatory: bool = False
    ) -> str:
        """Publish one event without a decorator; returns its message id."""
        return await self.publisher.publish_event(
            exchange_name, action, data, routing_key=key, mandatory=mandatory
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

    def _decorator(
        self, action: str | None, destination: Destination | None
    ) -> Callable[[AsyncFunction[P, R]], AsyncFunction[P, R]]:
        def decorate(func: AsyncFunction[P, R]) -> AsyncFunction[P, R]:
            if not inspect.iscoroutinefunction(func):
                raise ConfigurationError(f"{func!r} must be an async function (async def)")
            if destination is None:
                if action is not None:
                    self.registry.add(Handler.of(action, func))
                return func
            publish = self._publisher_of(destination)
            if action is not None:
                # The consumer calls func itself (so that data that cannot be bound to its
                # parameters is told apart from a failure inside it), then publishes.
                self.registry.add(Handler.of(action, func, after=publish))
            return _publishing(func, publish)

        return decorate

    def _publisher_of(self, destination: Destination) -> Callable[[Any], Awaitable[None]]:
        publish_event = self.publisher.publish_event

        async def publish(result: Any) -> None:
            await publish_event(
                destination.exchange_name,
                destination.action,
                result,
                routing_key=destination.key,
                mandatory=destination.mandatory,
            )

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
