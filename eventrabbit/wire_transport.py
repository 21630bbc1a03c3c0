"""aiormq's ``transport_factory`` for ``amqp`` and ``amqps`` URLs: the connection aiormq would
open, reading through a :class:`~eventrabbit.wire.WireReader`."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.abc
from aiormq.connection import TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from .wire import WireReader


class WireTransport(TransportFactory):
    """aiormq's ``transport_factory`` for ``amqp`` (TCP) and ``amqps`` (TLS) URLs: the
    connection aiormq would open, reading through a :class:`WireReader`.

    :attr reader: the reader of the last connection made, ``None`` before one.
    """

    def __init__(self) -> None:
        self.reader: WireReader | None = None

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the connection (as ``asyncio.open_connection`` does, with our reader)."""
        provider = kwargs.pop("ssl_context_provider", None)
        ssl = await provider.get_context() if url.scheme == "amqps" and provider else None
        host, port = url.host, url.port
        if host is None or port is None:
            raise AMQPConnectionError(f"the URL names no host and port: {url.with_password(None)}")
        loop = asyncio.get_running_loop()
        reader = WireReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, host, port, ssl=ssl, **kwargs
            )
        except OSError as exc:
            raise AMQPConnectionError(*exc.args) from exc
        self.reader = reader
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def wire_of(connection: aiormq.abc.AbstractConnection) -> WireReader | None:
    """The :class:`WireReader` of an eventrabbit AMQP connection; ``None`` for any other
    (the in-memory broker's, or a plain aiormq one)."""
    reader = getattr(connection, "wire", None)
    return reader if isinstance(reader, WireReader) else None
