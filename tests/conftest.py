"""Shared fixtures. Broker tests run on two brokers: the real RabbitMQ and eventrabbit.testing's
in-memory one, through the same fixtures; nothing is mocked.

Every test that uses ``broker_url`` (directly or through ``amqp_channel`` / ``names``) runs
once per broker, with the ids ``[rabbitmq]`` and ``[memory]``, so the two cannot drift apart.
A test marked ``real_broker`` (it needs what only a real RabbitMQ has: rabbitmqctl, vhosts,
TLS ports, real TCP failures, connection names, subprocesses sharing the broker) is
parametrised over ``rabbitmq`` alone: it is not collected for ``memory`` at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import aiormq.abc
import pytest
from yarl import URL

from eventrabbit import build_event_dependencies
from eventrabbit.common import ConsumeChannel
from eventrabbit.connection import open_connection
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from eventrabbit.testing import get_broker, memory_broker
from tests.helpers import BROKER_URL, censor_url, close_named_connections, unique

INTEGRATION_DIR = Path(__file__).parent / "integration"
BROKER_CHECK_TIMEOUT = 5.0
CLEANUP_TIMEOUT = 30.0
#: Seconds a consumer may take to start (``handle.ready``): a deadline, not a speed goal.
READY_TIMEOUT = 10.0

#: The brokers a test runs on, by test id.
RABBITMQ, MEMORY = "rabbitmq", "memory"
BROKERS = (RABBITMQ, MEMORY)
#: The marker of tests that run on the real broker only.
REAL_BROKER = "real_broker"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``broker_kind`` (behind ``broker_url``) over the brokers a test runs on.

    Module-scoped, so a module's tests run on one broker and then on the other, and a
    module-scoped fixture can run a service per broker (``module_broker_url``).
    """
    if "broker_kind" not in metafunc.fixturenames:
        return
    real_only = metafunc.definition.get_closest_marker(REAL_BROKER) is not None
    kinds = (RABBITMQ,) if real_only else BROKERS
    metafunc.parametrize("broker_kind", kinds, indirect=True, scope="module")


async def _ping_broker(url: str) -> None:
    async with asyncio.timeout(BROKER_CHECK_TIMEOUT):
        connection = await aiormq.connect(url)
        await connection.close()


def _needs_rabbitmq(item: pytest.Item) -> bool:
    """An integration test that is not the in-memory variant of a parametrised one."""
    if not item.path.is_relative_to(INTEGRATION_DIR):
        return False
    callspec = getattr(item, "callspec", None)
    return callspec is None or callspec.params.get("broker_kind") != MEMORY


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop the whole run early when real-broker tests were collected but no broker answers.

    A missing broker is an environment error, not a reason to skip: skipping
    would let a run without RabbitMQ look green.
    """
    if session.config.option.collectonly:
        return
    if not any(_needs_rabbitmq(item) for item in session.items):
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


@contextlib.contextmanager
def _url_of(kind: str) -> Iterator[str]:
    """The real broker's URL, or the URL of a fresh in-memory broker (forgotten on exit)."""
    if kind == MEMORY:
        with memory_broker() as broker:
            yield broker.url
    else:
        yield BROKER_URL


@pytest.fixture(scope="module")
def broker_kind(request: pytest.FixtureRequest) -> str:
    """The broker under test: ``rabbitmq`` or ``memory`` (set by ``pytest_generate_tests``)."""
    kind = getattr(request, "param", None)
    if kind not in BROKERS:
        raise RuntimeError(f"broker_kind is parametrised by conftest, not {kind!r}")
    return str(kind)


@pytest.fixture
def broker_url(broker_kind: str) -> Iterator[str]:
    """URL of the broker under test.

    ``rabbitmq``: EVENTRABBIT_TEST_URL (default: the local guest). ``memory``: a fresh
    ``eventrabbit.testing`` broker for this test alone.
    """
    with _url_of(broker_kind) as url:
        yield url


@pytest.fixture(scope="module")
def module_broker_url(broker_kind: str) -> Iterator[str]:
    """Like ``broker_url``, for a module-scoped fixture: one in-memory broker per module."""
    with _url_of(broker_kind) as url:
        yield url


@pytest.fixture
async def amqp_channel(broker_url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A raw aiormq channel with publisher confirms on its own connection.

    This is the test's independent second client: it publishes, inspects
    queues and consumes without going through eventrabbit. ``open_connection`` gives an
    aiormq connection for ``amqp://`` and the in-memory one, with the same API, for
    ``memory://``.
    """
    connection = await open_connection(broker_url)
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
        connection = await open_connection(url)
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


class Services:
    """Builds ``events, handle`` pairs on the broker under test and runs their consumers.

    A consumer is waited for with eventrabbit's own readiness API (``handle.ready``), never by
    polling the broker. Teardown releases the gates, closes every handle and ends every
    consume task.
    """

    def __init__(self, url: str, names: Names) -> None:
        self.url = url
        self.names = names
        self.handles: list[Handle] = []
        self.tasks: list[asyncio.Future[Any]] = []
        self.gates: list[asyncio.Event] = []

    def build(self, url: str | None = None, **kwargs: Any) -> tuple[Events, Handle]:
        """``build_event_dependencies`` on ``url`` (default: the broker under test)."""
        events, handle = build_event_dependencies(url or self.url, **kwargs)
        self.handles.append(handle)
        return events, handle

    def target(
        self, prefix: str = "q", *, url: str | None = None, **options: Any
    ) -> ConsumeChannel:
        """A ``ConsumeChannel`` of a fresh queue (deleted at teardown) on the broker under test.

        :param options: the other ``ConsumeChannel`` arguments (exchange, config, keys).
        """
        return ConsumeChannel(url or self.url, self.names.queue(prefix), **options)

    def gate(self) -> asyncio.Event:
        """An event that teardown sets, so no handler blocks the close."""
        gate = asyncio.Event()
        self.gates.append(gate)
        return gate

    def track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Have teardown end ``task``."""
        self.tasks.append(task)
        return task

    def start(self, handle: Handle, target: ConsumeChannel) -> asyncio.Task[None]:
        """Start ``handle.consume(target)`` and return its task at once (not waiting)."""
        task = asyncio.create_task(handle.consume(target))
        self.track(task)
        return task

    async def consume(
        self,
        handle: Handle,
        target: ConsumeChannel,
        timeout: float = READY_TIMEOUT,  # noqa: ASYNC109 - a deadline
    ) -> asyncio.Task[None]:
        """Start ``handle.consume(target)``; return its task once the queue is consumed.

        :raises TopologyError: (or whatever ended consume) at once, via ``handle.ready``.
        """
        task = self.start(handle, target)
        await handle.ready(target, timeout=timeout)
        return task

    async def aclose(self) -> None:
        for gate in self.gates:
            gate.set()
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            for handle in self.handles:
                await handle.close()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def services(broker_url: str, names: Names) -> AsyncIterator[Services]:
    """``Services`` on the broker under test.

    Depends on ``names`` so that the consumers stop before their queues are deleted.
    """
    made = Services(broker_url, names)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def drop_connections(broker_kind: str, broker_url: str) -> Callable[[str], Awaitable[None]]:
    """Close connections from the broker side, as a broker restart or an operator would.

    Called with a connection name (the ``?name=`` of :func:`tests.helpers.named`): on the real
    broker it closes the connections of that name (``rabbitmqctl close_connection``); the
    in-memory broker can only drop all its connections (``drop_connections``).
    """

    async def drop(name: str) -> None:
        if broker_kind == MEMORY:
            get_broker(broker_url).drop_connections()
        else:
            assert await close_named_connections(name), f"no connection named {name!r}"

    return drop
