"""Conveniences for tests: a fresh broker per test, ``amqp://`` sent to memory, and running
a ``handle``'s consumers for the length of a block.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import aiormq.abc

from ..common import ConsumeChannel
from ..connection import AMQP_SCHEMES, Transport, register_transport
from ..errors import ConfigurationError
from ..handle import Handle
from .broker import SCHEME, MemoryBroker, forget_broker, get_broker
from .transport import connect_memory


@contextlib.contextmanager
def memory_broker(name: str | None = None) -> Iterator[MemoryBroker]:
    """A fresh broker for one test, forgotten (connections dropped, state gone) on exit.

    :param name: the broker's name (its URL is ``memory://<name>``); default: a unique one.

    As a pytest fixture::

        @pytest.fixture
        def broker():
            with memory_broker() as broker:
                yield broker
    """
    broker = get_broker(f"{SCHEME}://{name or 'test-' + secrets.token_hex(6)}")
    broker.reset()
    try:
        yield broker
    finally:
        forget_broker(broker)


#: The broker ``amqp://`` connections go to inside :func:`redirect_amqp`, if any.
_redirected_to: MemoryBroker | None = None


@contextlib.contextmanager
def redirect_amqp(broker: MemoryBroker | None = None) -> Iterator[MemoryBroker]:
    """Send every ``amqp://``/``amqps://`` connection eventrabbit opens to ``broker``.

    For services whose ``events, handle`` are built at import time with a real broker's
    URL: inside the block they run on the in-memory broker instead (connections opened
    before the block keep going where they went). ``memory://`` URLs are left alone.

    :param broker: default: the ``memory://`` broker.
    """
    global _redirected_to
    target = broker or get_broker()

    async def to_target(url: str) -> aiormq.abc.AbstractConnection:
        return await connect_memory(target.url)

    replaced: dict[str, Transport | None] = {
        scheme: register_transport(scheme, to_target) for scheme in AMQP_SCHEMES
    }
    previous, _redirected_to = _redirected_to, target
    try:
        yield target
    finally:
        for scheme, transport in replaced.items():
            register_transport(scheme, transport)
        _redirected_to = previous


@contextlib.asynccontextmanager
async def consuming(
    handle: Handle,
    *channels: ConsumeChannel,
    broker: MemoryBroker | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 (bounds the start)
) -> AsyncIterator[None]:
    """Run ``handle.consume`` for each channel; return once every queue has its consumer.

    On exit, ``handle.close()`` stops them gracefully (in-flight handlers finish and ack).

    :param broker: where to look for the consumers; default: the broker of each channel's
        ``memory://`` URL, or for an ``amqp://`` one the broker of :func:`redirect_amqp`.
    :raises TimeoutError: a consumer did not start within ``timeout`` seconds.
    :raises TopologyError: a queue or exchange cannot be set up as asked.
    """
    brokers = [_broker_of(channel, broker) for channel in channels]
    tasks = [asyncio.create_task(handle.consume(channel)) for channel in channels]
    try:
        async with asyncio.timeout(timeout):
            for channel, task, where in zip(channels, tasks, brokers, strict=True):
                await _started(where, channel.queue_name, task)
        yield
    finally:
        await handle.close()
        for task in tasks:
            task.cancel()  # one that has not started yet is not known to the handle
        await asyncio.gather(*tasks, return_exceptions=True)


def _broker_of(channel: ConsumeChannel, broker: MemoryBroker | None) -> MemoryBroker:
    if broker is not None:
        return broker
    url = channel.urls[0]
    if url.startswith(SCHEME + ":"):
        return get_broker(url)
    if _redirected_to is not None:
        return _redirected_to
    raise ConfigurationError(
        f"queue {channel.queue_name!r} is not on a memory:// broker; use redirect_amqp()"
    )


async def _started(broker: MemoryBroker, queue: str, task: asyncio.Task[None]) -> None:
    while queue not in broker.queues or not broker.queues[queue].consumers:
        if task.done():
            task.result()  # raises what ended it
            return
        await asyncio.sleep(0.001)
