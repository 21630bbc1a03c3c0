"""Shared fixtures. Broker tests run against a real RabbitMQ; nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiormq
import aiormq.abc
import pytest
from yarl import URL

from tests.helpers import BROKER_URL, censor_url, unique

INTEGRATION_DIR = Path(__file__).parent / "integration"
BROKER_CHECK_TIMEOUT = 5.0
CLEANUP_TIMEOUT = 30.0


async def _ping_broker(url: str) -> None:
    async with asyncio.timeout(BROKER_CHECK_TIMEOUT):
        connection = await aiormq.connect(url)
        await connection.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop the whole run early when broker tests were collected but no broker answers.

    A missing broker is an environment error, not a reason to skip: skipping
    would let a run without RabbitMQ look green.
    """
    if session.config.option.collectonly:
        return
    if not any(item.path.is_relative_to(INTEGRATION_DIR) for item in session.items):
        return
    try:
        asyncio.run(_ping_broker(BROKER_URL))
    except Exception as exc:  # noqa: BLE001 - whatever fails, the broker is unusable
        reason = str(exc) or type(exc).__name__
        password = URL(BROKER_URL).password
        if password:
            reason = reason.replace(password, "******")
        pytest.exit(
            f"RabbitMQ does not answer at {censor_url(BROKER_URL)} ({reason}): "
            "start it with `rabbitmq-server -detached` or "
            "`docker compose -f docker/compose.yml up -d`",
            returncode=3,
        )


@pytest.fixture
def broker_url() -> str:
    """URL of the broker under test (EVENTRABBIT_TEST_URL, default local guest)."""
    return BROKER_URL


@pytest.fixture
async def amqp_channel(broker_url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A raw aiormq channel with publisher confirms on its own connection.

    This is the test's independent second client: it publishes, inspects
    queues and consumes without going through eventrabbit.
    """
    connection = await aiormq.connect(broker_url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


class Names:
    """Hands out unique queue and exchange names and deletes them at teardown.

    For every queue name it also deletes ``<name>.delay`` and ``<name>.dlq``.
    Names created some other way can be appended to ``queues``/``exchanges``.
    """

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, prefix: str = "q") -> str:
        name = unique(prefix)
        self.queues.append(name)
        return name

    def exchange(self, prefix: str = "ex") -> str:
        name = unique(prefix)
        self.exchanges.append(name)
        return name

    async def delete_all(self, url: str) -> None:
        """Delete everything handed out, on a connection of its own."""
        queues = [f"{q}{suffix}" for q in self.queues for suffix in ("", ".delay", ".dlq")]
        if not queues and not self.exchanges:
            return
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=False)
            # queue.delete and exchange.delete succeed for names that do not
            # exist, so errors here are rarer (e.g. 405 for an exclusive queue
            # that another, still open, connection owns; it goes with that
            # connection). Such an error closes the channel: open a new one.
            targets = [("queue", q) for q in queues] + [("exchange", e) for e in self.exchanges]
            for kind, name in targets:
                if channel.is_closed:
                    channel = await connection.channel(publisher_confirms=False)
                with contextlib.suppress(aiormq.AMQPChannelError):
                    if kind == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
        finally:
            await connection.close()


@pytest.fixture
async def names(broker_url: str) -> AsyncIterator[Names]:
    """Unique broker object names, deleted after the test."""
    factory = Names()
    yield factory
    async with asyncio.timeout(CLEANUP_TIMEOUT):
        await factory.delete_all(broker_url)
