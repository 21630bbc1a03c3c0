"""Running a service's consumers in a test: :func:`consuming`.

It starts ``handle.consume`` for each channel and waits on the handle's own readiness
(:meth:`eventrabbit.handle.Handle.ready`) — no broker is asked — so it works the same for
``memory://``, ``amqp://`` redirected to memory, and a real RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from ..common import ConsumeChannel
from ..handle import Handle
from .broker import MemoryBroker


def consuming(
    handle: Handle,
    *channels: ConsumeChannel,
    broker: MemoryBroker | None = None,
    timeout: float = 5.0,
) -> AbstractAsyncContextManager[None]:
    """Run ``handle.consume`` for each channel; enter once every one of them consumes.

    On exit, ``handle.close()`` stops them gracefully (in-flight handlers finish and ack).

    :param broker: deprecated and ignored: readiness comes from the handle, which knows
        where each channel's consumer runs.
    :param timeout: seconds the consumers get to start.
    :raises TimeoutError: a consumer did not start within ``timeout`` seconds; the message
        names the last error of each consumer that did not.
    :raises TopologyError: a queue or exchange cannot be set up as asked.
    """
    if broker is not None:
        warnings.warn(
            "consuming(broker=...) is ignored: readiness comes from the handle",
            DeprecationWarning,
            stacklevel=2,
        )
    return _consuming(handle, channels, timeout)


@contextlib.asynccontextmanager
async def _consuming(
    handle: Handle,
    channels: tuple[ConsumeChannel, ...],
    timeout: float,  # noqa: ASYNC109 (bounds the start)
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(handle.consume(channel)) for channel in channels]
    try:
        try:
            await handle.ready(*channels, timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(_why_not_ready(handle, exc)) from None
        yield
    finally:
        await handle.close()
        for task in tasks:
            task.cancel()  # one that has not started yet is not known to the handle
        await asyncio.gather(*tasks, return_exceptions=True)


def _why_not_ready(handle: Handle, exc: TimeoutError) -> str:
    # The usual cause in a test is an amqp:// URL without redirect_amqp(): say what failed.
    errors = [
        f"{status.queue} on {status.broker}: {status.last_error}"
        for status in handle.status()
        if not status.consuming and status.last_error
    ]
    return f"{exc}; last errors: {'; '.join(errors)}" if errors else str(exc)
