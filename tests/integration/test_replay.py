"""Replay and follow: a stream's events through the registered handlers, on the broker.

What a test checks is what the handlers saw (their calls, in order, with the offsets
``replay_offset`` gave them), what the summary says, and what a second raw client finds in
the queues; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiormq.abc
import asyncpg
import pytest

from eventrabbit import (
    ExchangeType,
    ExternalCheckpoints,
    FileCheckpoints,
    MemoryCheckpoints,
    ReplayFailed,
    RetryConfig,
    StreamChannel,
    capture,
    replay_offset,
    replaying,
)
from tests.conftest import Names, Services
from tests.helpers import (
    Calls,
    collect,
    event,
    eventually,
    named,
    publish_raw,
    queue_depth,
    unique,
)

NO_RETRY = RetryConfig(max_retries=0)


@pytest.fixture
async def stream_names(broker_url: str) -> AsyncIterator[Names]:
    """Like ``names``, for streams (and their ``.dlq``)."""
    made = Names()
    yield made
    await made.delete_all(broker_url)


def source(url: str, names: Names, exchange: str, **options: Any) -> StreamChannel:
    return StreamChannel(
        url, names.queue("stream"), exchange, ExchangeType.TOPIC, max_age="1D", **options
    )


async def test_capture_10000_mixed_events_and_replay_them_from_first_offset_and_time(
    broker_url: str, services: Services, stream_names: Names
) -> None:
    events, handle = services.build()
    seen: list[tuple[str, int, int]] = []

    @events.consumer("deposit")
    async def deposit(n: int) -> None:
        seen.append(("deposit", n, replay_offset() or 0))

    @events.consumer("withdraw")
    async def withdraw(n: int, reason: str = "") -> None:
        seen.append(("withdraw", n, replay_offset() or 0))

    exchange = stream_names.exchange("ex")
    stream = source(broker_url, stream_names, exchange)
    await capture(stream)
    first = [{"n": n} for n in range(5000)]
    deposits = await events.publish_many(exchange, "deposit", first[::2], key="acct.deposit")
    withdrawals = await events.publish_many(exchange, "withdraw", first[1::2], key="acct.w")
    assert deposits.ok
    assert withdrawals.ok
    # The second half is published in a later second: a replay "from a time" starts there.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await eventually(lambda: datetime.now(UTC) >= later, what="the next second")
    rest = await events.publish_many(exchange, "deposit", [{"n": n} for n in range(5000, 10000)])
    assert rest.ok

    everything = await handle.replay(stream, start="first", stop="idle")
    assert (everything.handled, everything.first_offset, everything.last_offset) == (10000, 0, 9999)
    assert [offset for _, _, offset in seen] == list(range(10000))  # in stream order
    assert sorted(n for _, n, _ in seen) == list(range(10000))
    assert {kind for kind, _, _ in seen} == {"deposit", "withdraw"}
    assert everything.held_back == 0
    assert everything.dead_lettered == 0

    seen.clear()
    middle = await handle.replay(stream, start=7321, stop=7400)
    assert (middle.handled, middle.first_offset, middle.last_offset) == (80, 7321, 7400)
    assert [offset for _, _, offset in seen] == list(range(7321, 7401))

    seen.clear()
    recent = await handle.replay(stream, start=later)
    assert recent.handled == 5000
    assert sorted(n for _, n, _ in seen) == list(range(5000, 10000))

    seen.clear()
    until = await handle.replay(stream, stop=later - timedelta(microseconds=1))
    assert (until.handled, until.last_offset) == (5000, 4999)  # published before that time

    seen.clear()
    ago = await handle.replay(stream, start=timedelta(days=1), stop=9)
    assert [offset for _, _, offset in seen] == list(range(10))
    assert ago.last_offset == 9


async def test_a_replay_handles_nothing_of_an_empty_stream(
    broker_url: str, services: Services, stream_names: Names
) -> None:
    _, handle = services.build()
    summary = await handle.replay(source(broker_url, stream_names, stream_names.exchange()))
    assert (summary.handled, summary.first_offset, summary.last_offset) == (0, None, None)


async def test_follow_with_a_file_checkpoint_survives_kills_and_a_restart_exactly_once(
    broker_url: str,
    services: Services,
    stream_names: Names,
    tmp_path: Path,
    drop_connections: Callable[[str], Awaitable[None]],
) -> None:
    events, handle = services.build()
    calls: Calls[tuple[int, int]] = Calls()
    # The connection is killed while the handler of these events runs, with more prefetched.
    gates = {n: asyncio.Event() for n in (30, 70, 110)}
    reached: Calls[int] = Calls()

    @events.consumer("tick")
    async def tick(n: int) -> None:
        assert replaying() is not None
        gate = gates.pop(n, None)
        if gate is not None:
            reached.add(n)
            await gate.wait()
        calls.add((n, replay_offset() or 0))

    exchange = stream_names.exchange()
    url, name = named(broker_url, "follower")
    stream = source(url, stream_names, exchange, prefetch_count=7)
    await capture(stream)
    store = FileCheckpoints(tmp_path)
    sent = 0

    async def publish(count: int) -> None:
        nonlocal sent
        items = [{"n": n} for n in range(sent, sent + count)]
        result = await events.publish_many(exchange, "tick", items)
        assert result.ok
        sent += count

    def follow() -> asyncio.Future[Any]:
        return services.track(asyncio.create_task(handle.follow(stream, "projection", store)))

    task = follow()
    for kills, n in enumerate((30, 70, 110), start=1):
        gate = gates[n]
        await publish(40)
        await reached.count(kills)
        await drop_connections(name)
        gate.set()
    await publish(40)
    await calls.count(sent)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.load("projection") == sent - 1
    await publish(30)  # while nobody follows
    # The restart: a new service, which knows only the checkpoint's file.
    events, handle = services.build()
    events.consumer("tick")(tick)
    store = FileCheckpoints(tmp_path)
    task = follow()
    await calls.count(sent)
    assert [offset for _, offset in calls.values] == list(range(sent))
    assert [n for n, _ in calls.values] == list(range(sent))


async def test_a_failing_event_stops_the_replay_naming_its_offset(
    broker_url: str, services: Services, stream_names: Names
) -> None:
    events, handle = services.build()
    attempts: list[int] = []

    @events.consumer("apply")
    async def apply(n: int) -> None:
        if n == 3:
            attempts.append(n)
            raise RuntimeError("projection is broken")

    exchange = stream_names.exchange()
    stream = source(broker_url, stream_names, exchange)
    await capture(stream)
    assert (await events.publish_many(exchange, "apply", [{"n": n} for n in range(6)])).ok
    store = MemoryCheckpoints()
    retry = RetryConfig(max_retries=2, retry_delay_seconds=0)
    with pytest.raises(ReplayFailed) as caught:
        await handle.replay(stream, retry=retry, checkpoint="p", store=store)
    assert (caught.value.offset, caught.value.action, caught.value.stream) == (
        3,
        "apply",
        stream.stream_name,
    )
    assert "RuntimeError: projection is broken" in str(caught.value)
    assert attempts == [3, 3, 3]  # the first attempt and two retries, in process
    assert store.offsets == {"p": 2}  # every event before it, and none after


async def test_a_failing_event_is_dead_lettered_with_its_offset_and_the_replay_goes_on(
    broker_url: str,
    services: Services,
    stream_names: Names,
    amqp_channel: aiormq.abc.AbstractChannel,
) -> None:
    events, handle = services.build()
    handled: list[int] = []

    @events.consumer("apply")
    async def apply(n: int) -> None:
        if n == 3:
            raise ValueError("no such account")
        handled.append(n)

    exchange = stream_names.exchange()
    stream = source(broker_url, stream_names, exchange)
    await capture(stream)
    items: list[Any] = [{"n": n} for n in range(6)] + [{"wrong": 1}]  # and bad input
    assert (await events.publish_many(exchange, "apply", items)).ok
    retry = RetryConfig(max_retries=1, retry_delay_seconds=0)
    summary = await handle.replay(stream, on_failure="dead_letter", retry=retry)
    assert handled == [0, 1, 2, 4, 5]
    assert (summary.handled, summary.dead_lettered, summary.last_offset) == (7, 2, 6)
    dead = await collect(amqp_channel, f"{stream.stream_name}.dlq", 2)
    headers = [message.header.properties.headers or {} for message in dead]
    assert [h["x-stream-offset"] for h in headers] == [3, 6]
    assert headers[0]["x-eventrabbit-error"] == "ValueError: no such account"
    assert headers[0]["x-retry-count"] == 1
    assert headers[1]["x-retry-count"] == 0  # bad input is never retried
    assert "data does not fit handler 'apply'" in headers[1]["x-eventrabbit-error"]
    assert headers[0]["x-eventrabbit-queue"] == stream.stream_name


async def test_what_handlers_publish_is_held_back_unless_the_replay_opts_in(
    broker_url: str,
    services: Services,
    stream_names: Names,
    names: Names,
    amqp_channel: aiormq.abc.AbstractChannel,
) -> None:
    events, handle = services.build()
    out = names.exchange("out")
    watched = names.queue("watched")
    await amqp_channel.exchange_declare(out, exchange_type="fanout")
    await amqp_channel.queue_declare(watched)
    await amqp_channel.queue_bind(watched, out)
    modes: list[bool] = []

    @events.producer(out, "audited")
    async def audit(n: int) -> dict[str, int]:
        return {"n": n}

    @events.function("order", out, "ordered")
    async def order(n: int) -> dict[str, int]:
        context = replaying()
        modes.append(context is not None and context.side_effects)
        await audit(n)
        await events.publish(out, "noted", {"n": n})
        assert (await events.publish_many(out, "listed", [{"n": n}, {"n": -n}])).ok
        return {"n": n}

    exchange = stream_names.exchange()
    stream = source(broker_url, stream_names, exchange)
    await capture(stream)
    assert (await events.publish_many(exchange, "order", [{"n": n} for n in range(4)])).ok
    replies = names.queue("replies")
    await amqp_channel.queue_declare(replies)
    request = event("order", {"n": 4})
    await publish_raw(amqp_channel, request, "k", exchange, reply_to=replies, correlation_id="c")

    quiet = await handle.replay(stream)
    # 5 x (the function's result, the producer's, events.publish, 2 of publish_many), the reply
    assert (quiet.handled, quiet.held_back) == (5, 26)
    assert await queue_depth(amqp_channel, watched) == 0
    assert await queue_depth(amqp_channel, replies) == 0

    loud = await handle.replay(stream, side_effects=True)
    assert (loud.handled, loud.held_back) == (5, 0)
    assert len(await collect(amqp_channel, watched, 25)) == 25
    (reply,) = await collect(amqp_channel, replies, 1)
    assert reply.body == b'{"data":{"n":4}}'
    assert reply.header.properties.correlation_id == "c"
    assert modes == [False] * 5 + [True] * 5


POSTGRES_URL = os.environ.get(
    "EVENTRABBIT_TEST_POSTGRES", "postgresql://postgres@localhost/postgres"
)


@pytest.fixture
async def database() -> AsyncIterator[asyncpg.Connection]:
    """A PostgreSQL connection with a fresh schema of its own on its search path."""
    connection = await asyncpg.connect(POSTGRES_URL)
    schema = unique("replay").replace(".", "_")
    await connection.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
    try:
        yield connection
    finally:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await connection.close()


async def test_a_projection_and_its_checkpoint_commit_together_in_postgresql(
    broker_url: str, services: Services, stream_names: Names, database: asyncpg.Connection
) -> None:
    await database.execute(
        "CREATE TABLE balances (account text PRIMARY KEY, total bigint NOT NULL);"
        "CREATE TABLE checkpoints (name text PRIMARY KEY, stream_offset bigint NOT NULL)"
    )
    events, handle = services.build()
    broken = {"at": 5}

    @events.consumer("deposit")
    async def deposit(account: str, amount: int) -> None:
        async with database.transaction():
            await database.execute(
                "INSERT INTO balances VALUES ($1, $2) "
                "ON CONFLICT (account) DO UPDATE SET total = balances.total + $2",
                account,
                amount,
            )
            await database.execute(
                "INSERT INTO checkpoints VALUES ('balances', $1) "
                "ON CONFLICT (name) DO UPDATE SET stream_offset = $1",
                replay_offset(),
            )
            if replay_offset() == broken["at"]:
                raise RuntimeError("crashed before the commit")

    async def load(name: str) -> int | None:
        value: int | None = await database.fetchval(
            "SELECT stream_offset FROM checkpoints WHERE name = $1", name
        )
        return value

    exchange = stream_names.exchange()
    stream = source(broker_url, stream_names, exchange)
    await capture(stream)
    items = [{"account": "ab"[n % 2], "amount": 10**n} for n in range(8)]
    assert (await events.publish_many(exchange, "deposit", items)).ok
    store = ExternalCheckpoints(load)

    with pytest.raises(ReplayFailed):
        await handle.replay(stream, retry=NO_RETRY, checkpoint="balances", store=store)
    assert await load("balances") == 4  # the event at 5 rolled back with its checkpoint
    broken["at"] = -1
    summary = await handle.replay(stream, checkpoint="balances", store=store)
    assert (summary.first_offset, summary.last_offset) == (5, 7)
    totals = dict(await database.fetch("SELECT account, total FROM balances"))
    assert totals == {"a": 1010101, "b": 10101010}  # every deposit exactly once
