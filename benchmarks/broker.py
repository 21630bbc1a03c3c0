"""Set-up done with raw aiormq outside the timed parts: queues, pre-published events, clean-up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiormq
import aiormq.abc
import orjson
from pamqp import commands as spec

from .settings import ACTION

#: Confirmed publishes in flight at once while pre-publishing.
PREFILL_BATCH = 1_000
_PREFILL_PROPERTIES = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


def event_body(i: int) -> bytes:
    """The small event every workload sends: ``{"action": "BENCH", "data": {...}}``."""
    return orjson.dumps({"action": ACTION, "data": {"i": i, "name": "x"}})


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "?" if value is None else str(value)


def unique_queue(client: str, workload: str) -> str:
    """A fresh queue name for one client in one workload."""
    return f"bench.{workload}.{client}.{uuid.uuid4().hex[:10]}"


def companions(queue: str) -> tuple[str, ...]:
    """The queue and the companions eventrabbit declares beside it (deleted if present)."""
    return (queue, queue + ".delay", queue + ".dlq")


class Admin:
    """A raw aiormq connection for set-up and checks."""

    def __init__(self, connection: aiormq.abc.AbstractConnection) -> None:
        self.connection = connection
        self._channel: aiormq.abc.AbstractChannel | None = None

    @property
    def broker_version(self) -> str:
        """The broker's product and version from the connection's server properties."""
        props = self.connection.server_properties
        return f"{_text(props.get('product'))} {_text(props.get('version'))}"

    async def channel(self) -> aiormq.abc.AbstractChannel:
        """A confirm channel, reopened if a failed check closed it."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=True)
        return self._channel

    async def declare(self, queue: str) -> None:
        """Declare ``queue`` durable (what eventrabbit's defaults declare too)."""
        channel = await self.channel()
        await channel.queue_declare(queue, durable=True)

    async def ready_count(self, queue: str) -> int:
        """Messages ready in ``queue`` (unacked ones are not counted)."""
        channel = await self.channel()
        ok = await channel.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)

    async def prefill(self, queue: str, n: int) -> None:
        """Publish ``n`` events to ``queue`` with confirms, in gathered batches."""
        channel = await self.channel()
        for start in range(0, n, PREFILL_BATCH):
            stop = min(start + PREFILL_BATCH, n)
            await asyncio.gather(
                *(
                    channel.basic_publish(
                        event_body(i), routing_key=queue, properties=_PREFILL_PROPERTIES
                    )
                    for i in range(start, stop)
                )
            )

    async def check_ready(self, queue: str, n: int) -> None:
        """Make sure ``queue`` holds ``n`` ready messages (confirmed means enqueued)."""
        ready = await self.ready_count(queue)
        if ready != n:
            raise RuntimeError(f"{queue} holds {ready} messages, not {n}")

    async def delete(self, queue: str) -> None:
        """Delete ``queue`` and eventrabbit's companions of it, whichever exist."""
        channel = await self.channel()
        for name in companions(queue):
            await channel.queue_delete(name)


@asynccontextmanager
async def admin(url: str) -> AsyncIterator[Admin]:
    """An :class:`Admin` on its own connection, closed on exit."""
    connection = await aiormq.connect(url)
    try:
        yield Admin(connection)
    finally:
        await connection.close()
