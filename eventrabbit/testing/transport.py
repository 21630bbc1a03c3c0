"""``memory://`` as an eventrabbit transport, and ``amqp://`` sent to memory for a while.

eventrabbit opens every connection through the transport its URL's scheme is registered
with (:func:`eventrabbit.connection.register_transport`). Importing
:mod:`eventrabbit.testing` registers :func:`connect_memory` for ``memory``; everything above
the connection — consumers, the publisher, RPC calls — then runs unchanged on the
:class:`~.connection.MemoryConnection` and its channels. :func:`redirect_amqp` registers a
transport to one broker for ``amqp`` and ``amqps`` and puts the previous ones back after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import cast

import aiormq.abc

from ..connection import AMQP_SCHEMES, Transport, register_transport
from .broker import MemoryBroker
from .brokers import get_broker
from .connection import MemoryConnection


async def connect_memory(url: str) -> aiormq.abc.AbstractConnection:
    """Connect to the in-memory broker named by ``url`` (``memory://`` or ``memory://<name>``).

    Typed as aiormq's connection: it implements the part of that API eventrabbit uses.
    """
    broker = get_broker(url)
    broker.connections.prune()
    connection = MemoryConnection(broker, url)
    broker.connections.add(connection)
    await asyncio.sleep(0)  # connecting is I/O
    return cast(aiormq.abc.AbstractConnection, connection)


@contextlib.contextmanager
def redirect_amqp(broker: MemoryBroker | None = None) -> Iterator[MemoryBroker]:
    """Send every ``amqp://``/``amqps://`` connection eventrabbit opens to ``broker``.

    For services whose ``events, handle`` are built at import time with a real broker's
    URL: inside the block they run on the in-memory broker instead (connections opened
    before the block keep going where they went). ``memory://`` URLs are left alone.

    :param broker: default: the ``memory://`` broker.
    """
    target = broker or get_broker()

    async def to_target(url: str) -> aiormq.abc.AbstractConnection:
        return await connect_memory(target.url)

    replaced: dict[str, Transport | None] = {
        scheme: register_transport(scheme, to_target) for scheme in AMQP_SCHEMES
    }
    try:
        yield target
    finally:
        for scheme, transport in replaced.items():
            register_transport(scheme, transport)
