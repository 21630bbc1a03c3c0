"""Fixtures for the in-memory broker's tests: a fresh broker each, raw clients, services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiormq.abc
import pytest

from eventrabbit import build_event_dependencies
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from eventrabbit.testing import MemoryBroker, memory_broker
from eventrabbit.testing.transport import connect_memory

Channel = aiormq.abc.AbstractChannel
Service = tuple[Events, Handle]


@pytest.fixture
def broker() -> Iterator[MemoryBroker]:
    """A broker of this test's own, forgotten afterwards."""
    with memory_broker() as fresh:
        yield fresh


@pytest.fixture
async def connection(broker: MemoryBroker) -> AsyncIterator[aiormq.abc.AbstractConnection]:
    """A raw aiormq-shaped connection to ``broker``, the test's independent client."""
    opened = await connect_memory(broker.url)
    yield opened
    await opened.close()


@pytest.fixture
async def channel(connection: aiormq.abc.AbstractConnection) -> Channel:
    """A raw confirm-mode channel on ``connection``."""
    return await connection.channel(publisher_confirms=True)


@pytest.fixture
async def service(broker: MemoryBroker) -> AsyncIterator[Callable[..., Service]]:
    """Builds ``events, handle`` pairs on ``broker``; every handle is closed afterwards."""
    made: list[Handle] = []

    def build(**options: Any) -> Service:
        events, handle = build_event_dependencies(broker.url, **options)
        made.append(handle)
        return events, handle

    yield build
    for handle in made:
        await handle.close(timeout=1)
