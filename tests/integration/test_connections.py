"""Connections: idle close of the publisher, URLs (amqps, vhost), and no password leaks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import aiormq
import aiormq.abc
import orjson
import pytest
from yarl import URL

import eventrabbit
from eventrabbit import ReconnectConfig
from eventrabbit.common import ConsumeChannel
from eventrabbit.connection import open_connection
from tests.conftest import Names, Services
from tests.helpers import (
    BROKER_URL,
    Calls,
    assert_absent,
    close_named_connections,
    collect,
    eventually,
    named,
    named_connections,
    queue_depth,
    rabbitmqctl,
    unique,
)

Channel = aiormq.abc.AbstractChannel
WRONG_PASSWORD = "wrongpass"
TLS_PASSWORD = "s3cr3t"
# Nothing listens there: the local broker has no TLS listener, port 1 is closed.
TLS_URL = f"amqps://guest:{TLS_PASSWORD}@127.0.0.1:5671/"
CLOSED_PORT_URL = f"amqp://guest:{WRONG_PASSWORD}@127.0.0.1:1/"
# The real broker (EVENTRABBIT_TEST_URL), with a password it refuses.
WRONG_PASSWORD_URL = str(URL(BROKER_URL).with_password(WRONG_PASSWORD))


async def connection_pids(name: str) -> list[str]:
    """Pids of the broker connections whose client named itself ``name``."""
    return [pid for pid, _ in await named_connections(name)]


def exception_text(exc: BaseException) -> str:
    """Everything a traceback or log line of ``exc`` can show, chained exceptions included."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage()]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(exception_text(record.exc_info[1]))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


class _Into(logging.Handler):
    def __init__(self, calls: Calls[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.calls = calls

    def emit(self, record: logging.LogRecord) -> None:
        self.calls.add(record)


@contextlib.contextmanager
def logged(calls: Calls[logging.LogRecord]) -> Iterator[None]:
    """Add eventrabbit's warnings (and worse) to ``calls`` as they are logged."""
    logger = logging.getLogger("eventrabbit")
    handler = _Into(calls)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


async def fanout_with_queue(channel: Channel, names: Names) -> tuple[str, str]:
    exchange, queue = names.exchange(), names.queue()
    await channel.exchange_declare(exchange, exchange_type="fanout", durable=True)
    await channel.queue_declare(queue, durable=True)
    await channel.queue_bind(queue, exchange, routing_key="")
    return exchange, queue


# --------------------------------------------------------------------------- idle_timeout


@pytest.mark.real_broker  # watches a named connection with rabbitmqctl
async def test_idle_publisher_connection_closes_and_reopens(
    services: Services, names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    url, connection_name = named(broker_url, "idle")
    events, _ = services.build(url, idle_timeout=0.5)
    exchange, queue = await fanout_with_queue(amqp_channel, names)

    @events.producer(exchange_name=exchange, action="TICK")
    async def tick(n: int) -> dict[str, int]:
        return {"n": n}

    async def seen_while_publishing() -> tuple[list[str], int]:
        """List the broker's connections while publishing often enough to stay connected."""
        sent = 0
        listing = asyncio.ensure_future(connection_pids(connection_name))
        while not listing.done():
            await tick(sent)
            sent += 1
            assert events.publisher.connected
            await asyncio.wait([listing], timeout=0.1)
        return listing.result(), sent

    pids, sent = await seen_while_publishing()
    assert len(pids) == 1

    # No publishes now: the idle connection is closed, on our side and the broker's.
    await eventually(lambda: not events.publisher.connected, what="the idle close")

    async def closed_on_broker() -> bool:
        return not await connection_pids(connection_name)

    await eventually(closed_on_broker, what="the broker saw the connection close")

    # The next publish reopens it (a new connection) and is delivered.
    pids_again, more = await seen_while_publishing()
    assert len(pids_again) == 1
    assert pids_again != pids
    messages = await collect(amqp_channel, queue, sent + more)
    numbers = [orjson.loads(m.body)["data"]["n"] for m in messages]
    assert numbers == [*range(sent), *range(more)]
    assert await queue_depth(amqp_channel, queue) == 0


@pytest.mark.real_broker  # rabbitmqctl closes the connection
async def test_publisher_connection_closed_by_broker_is_reopened(
    services: Services, names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    url, connection_name = named(broker_url, "killed")
    events, _ = services.build(url, idle_timeout=None)
    exchange, queue = await fanout_with_queue(amqp_channel, names)

    @events.producer(exchange_name=exchange, action="TICK")
    async def tick(n: int) -> dict[str, int]:
        return {"n": n}

    await tick(1)
    [pid] = await connection_pids(connection_name)
    await close_named_connections(connection_name, "test: publisher connection lost")
    await eventually(lambda: not events.publisher.connected, what="the loss noticed")

    assert await tick(2) == {"n": 2}
    messages = await collect(amqp_channel, queue, 2)
    assert [orjson.loads(m.body)["data"] for m in messages] == [{"n": 1}, {"n": 2}]
    assert await connection_pids(connection_name) not in ([], [pid])


#: Pauses between bursts around the idle timeout (0.3 s), so that the idle check keeps firing
#: close to the start of a publish; ``None``: wait until the idle close has happened.
GAPS = (None, 0.28, 0.3, 0.32)
ROUNDS = 12


async def test_idle_close_never_interrupts_a_publish(
    services: Services, names: Names, amqp_channel: Channel, broker_url: str
) -> None:
    events, _ = services.build(broker_url, idle_timeout=0.3)
    exchange, queue = await fanout_with_queue(amqp_channel, names)

    @events.producer(exchange_name=exchange, action="TICK")
    async def tick(n: int) -> dict[str, int]:
        return {"n": n}

    sent = 0
    reconnects = 0
    for round_ in range(ROUNDS):
        was_connected = events.publisher.connected
        await asyncio.gather(*(tick(sent + i) for i in range(5)))
        reconnects += not was_connected
        sent += 5
        gap = GAPS[round_ % len(GAPS)]
        if gap is None:
            await eventually(lambda: not events.publisher.connected, what="an idle close")
        else:
            # Provokes the race (the assertions below hold however it turns out).
            await asyncio.sleep(gap)

    assert await queue_depth(amqp_channel, queue) == sent  # every call returned confirmed
    messages = await collect(amqp_channel, queue, sent)
    assert sorted(orjson.loads(m.body)["data"]["n"] for m in messages) == list(range(sent))
    # The first connect, and one after each idle close the loop waited for.
    assert reconnects >= 1 + ROUNDS // len(GAPS)


# --------------------------------------------------------------------------- URLs


@pytest.mark.real_broker  # TLS to a real port where nothing listens
async def test_amqps_url_accepted_and_failure_names_no_password(
    services: Services, names: Names
) -> None:
    events, _ = services.build(TLS_URL, publish_timeout=0.5)
    target = ConsumeChannel(url=TLS_URL, queue_name=names.queue())
    assert target.url == TLS_URL

    # The connection attempt itself: TLS to a port where nothing listens.
    with pytest.raises(eventrabbit.BrokerUnavailable) as info:
        await asyncio.wait_for(open_connection(TLS_URL), timeout=15)
    assert isinstance(info.value, ConnectionError)
    assert TLS_PASSWORD not in exception_text(info.value)
    assert TLS_PASSWORD not in info.value.url
    assert "amqps://guest:******@127.0.0.1:5671" in str(info.value)

    # A publish through it fails in the caller (within publish_timeout), still censored.
    with pytest.raises(eventrabbit.EventRabbitError) as published:
        await asyncio.wait_for(events.publish(names.exchange(), "ANY", {}), timeout=15)
    assert isinstance(published.value, eventrabbit.BrokerUnavailable | eventrabbit.PublishError)
    assert TLS_PASSWORD not in exception_text(published.value)


@pytest.mark.real_broker  # real TCP and authentication failures
@pytest.mark.parametrize("url", [WRONG_PASSWORD_URL, CLOSED_PORT_URL, TLS_URL])
async def test_no_password_in_logs_or_exceptions(
    services: Services,
    names: Names,
    caplog: pytest.LogCaptureFixture,
    url: str,
) -> None:
    password = URL(url).password
    assert password
    caplog.set_level(logging.DEBUG)
    events, handle = services.build(
        url, publish_timeout=0.5, reconnect=ReconnectConfig(initial_delay=0.05, max_delay=0.2)
    )

    @events.consumer(action="ANY")
    async def anything() -> None:
        return None

    warnings: Calls[logging.LogRecord] = Calls()
    with logged(warnings):
        task = services.start(handle, ConsumeChannel(url=url, queue_name=names.queue()))
        if url == WRONG_PASSWORD_URL:
            # A refused login is a deployment error: consume ends with it, logged at ERROR.
            with pytest.raises(eventrabbit.AccessRefused):
                await asyncio.wait_for(task, timeout=15)
        else:
            await warnings.count(2)  # two failed attempts
    if url != WRONG_PASSWORD_URL:
        assert not task.done()  # an unreachable broker is retried
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    with pytest.raises(eventrabbit.EventRabbitError) as info:
        await asyncio.wait_for(events.publish(names.exchange(), "ANY", {}), timeout=15)

    assert password not in exception_text(info.value)
    # The failures were logged, with the URL censored.
    assert any(
        "******" in r.getMessage() for r in caplog.records if r.name.startswith("eventrabbit")
    )
    leaks = [r for r in caplog.records if password in record_text(r)]
    assert not leaks, [r.getMessage() for r in leaks]


def test_eventrabbit_logger_has_no_handlers() -> None:
    eventrabbit_loggers = [
        logging.getLogger(name)
        for name in ["eventrabbit", *logging.Logger.manager.loggerDict]
        if name == "eventrabbit" or name.startswith("eventrabbit.")
    ]
    assert len(eventrabbit_loggers) > 1  # the package and its modules' loggers
    for logger in eventrabbit_loggers:
        assert logger.handlers == [], logger.name
        assert logger.propagate, logger.name


# --------------------------------------------------------------------------- vhost


@pytest.fixture
async def vhost() -> AsyncIterator[str]:
    # A slash in the name: the URL must percent-encode it (%2F), per RabbitMQ's URI spec.
    name = unique("vhost") + "/sub"
    await rabbitmqctl("add_vhost", name)
    try:
        await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        await rabbitmqctl("delete_vhost", name)


@pytest.mark.real_broker  # creates a vhost with rabbitmqctl
async def test_vhost_in_url_is_honoured(
    vhost: str, services: Services, amqp_channel: Channel, broker_url: str
) -> None:
    # ``vhost`` comes first, so it is deleted after the service stopped.
    vhost_url = str(URL(broker_url).with_path("/" + quote(vhost, safe=""), encoded=True))
    assert "%2F" in vhost_url
    events, handle = services.build(vhost_url)
    got: asyncio.Queue[int] = asyncio.Queue()

    @events.consumer(action="PING")
    async def ping(n: int) -> None:
        await got.put(n)

    queue, exchange = unique("vq"), unique("vex")
    target = ConsumeChannel(
        url=vhost_url, queue_name=queue, exchange_name=exchange, exchange_type="fanout"
    )
    services.start(handle, target)

    connection = await aiormq.connect(vhost_url)
    try:
        in_vhost = await connection.channel()
        await handle.ready(target)

        # Published through the vhost's exchange by the service itself.
        await events.publish(exchange, "PING", {"n": 1})
        async with asyncio.timeout(5):
            assert await got.get() == 1

        # The queue, its companions and the exchange exist in the vhost ...
        await in_vhost.queue_declare(queue, passive=True)
        await in_vhost.queue_declare(f"{queue}.dlq", passive=True)
        await in_vhost.exchange_declare(exchange, exchange_type="fanout", passive=True)
        # ... and only there.
        await assert_absent(amqp_channel, queues=(queue, f"{queue}.dlq"), exchanges=(exchange,))
    finally:
        await connection.close()
