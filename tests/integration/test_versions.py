"""What RabbitMQ 4.0 to 4.3 changed, made safe, tested as far as 3.10 (and the in-memory broker,
which can deny 4.3's deprecated features) can show it.

- ``handler_timeout`` cancels a handler and fails its message (both brokers);
- a refusal that closes the connection while a queue is declared — 4.3's denial of transient
  non-exclusive queues — ends ``consume`` with a ``TopologyError``, never a reconnect loop;
- ``basic.qos`` is never global (4.3 refuses it): seen in the broker's channel list;
- every quorum work queue has ``<queue>.dlq`` as its dead-letter target (4.0's default delivery
  limit drops messages without one), and one declared without it is used as it is;
- ``x-delivery-count`` and ``x-acquired-count`` never reach a copy;
- a declare refused by a vhost limit is a ``TopologyError`` naming the queue and the reason.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import aiormq
import aiormq.abc
import pytest
from yarl import URL

import eventrabbit
from eventrabbit import QueueConfig, RetryConfig, TopologyError
from eventrabbit.common import ConsumeChannel
from eventrabbit.connection import open_connection
from eventrabbit.failures import ERROR_HEADER
from eventrabbit.testing import memory_broker
from tests.conftest import Services
from tests.helpers import (
    BROKER_URL,
    Calls,
    collect,
    event,
    named,
    named_connections,
    publish_raw,
    rabbitmqctl,
)

Channel = aiormq.abc.AbstractChannel
#: Seconds a refused consume may take to end: a deadline for the failure to show.
FAIL_FAST_TIMEOUT = 10.0


# -- handler_timeout -------------------------------------------------------------------------


async def test_a_handler_past_its_timeout_is_cancelled_retried_and_dead_lettered(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0),
        queue_config=QueueConfig(handler_timeout=0.05),
    )
    cancelled: Calls[str] = Calls()

    @events.consumer("SLOW")
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.add("cancelled")
            raise

    target = services.target("handlertimeout")
    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("SLOW", {}), target.queue_name, message_id="m-1")
    [dead] = await collect(amqp_channel, f"{target.queue_name}.dlq", 1)
    headers = dead.header.properties.headers or {}
    assert headers[ERROR_HEADER] == (
        "HandlerTimeout: the handler ran longer than QueueConfig.handler_timeout (0.05 s) on "
        f"queue {target.queue_name!r} and was cancelled"
    )
    assert headers["x-retry-count"] == 1
    assert len(cancelled) == 2, "the first try and the retry were both cancelled"


async def test_a_timeout_the_handler_raises_itself_is_not_a_handler_timeout(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=0), queue_config=QueueConfig(handler_timeout=30)
    )

    @events.consumer("OWN")
    async def own() -> None:
        raise TimeoutError("the database did not answer")

    target = services.target("owntimeout")
    await services.consume(handle, target)
    await publish_raw(amqp_channel, event("OWN", {}), target.queue_name)
    [dead] = await collect(amqp_channel, f"{target.queue_name}.dlq", 1)
    headers = dead.header.properties.headers or {}
    assert headers[ERROR_HEADER] == "TimeoutError: the database did not answer"


async def test_a_caller_learns_of_the_handler_timeout(services: Services) -> None:
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=0), queue_config=QueueConfig(handler_timeout=0.05)
    )

    @events.consumer("SLOW_CALL")
    async def slow_call() -> int:
        await asyncio.Event().wait()
        return 1

    target = services.target("slowcall")
    await services.consume(handle, target)
    with pytest.raises(eventrabbit.RemoteError) as info:
        await events.call("SLOW_CALL", {}, key=target.queue_name, timeout=10)
    assert info.value.type == "HandlerTimeout"


# -- broker headers --------------------------------------------------------------------------


async def test_copies_carry_no_delivery_or_acquired_count(
    services: Services, amqp_channel: Channel
) -> None:
    events, handle = services.build(retry_config=RetryConfig(max_retries=0))

    @events.consumer("FAIL")
    async def fail() -> None:
        raise RuntimeError("no")

    target = services.target("counts")
    await services.consume(handle, target)
    headers = {"x-delivery-count": 3, "x-acquired-count": 4, "x-tenant": "acme"}
    await publish_raw(amqp_channel, event("FAIL", {}), target.queue_name, headers=headers)
    [dead] = await collect(amqp_channel, f"{target.queue_name}.dlq", 1)
    copied = dead.header.properties.headers or {}
    assert "x-delivery-count" not in copied
    assert "x-acquired-count" not in copied
    assert copied["x-tenant"] == "acme"


# -- quorum queues ---------------------------------------------------------------------------


@pytest.mark.real_broker  # quorum queues are RabbitMQ's own
async def test_a_quorum_work_queue_always_dead_letters_into_its_dlq(
    services: Services, amqp_channel: Channel
) -> None:
    """Declared with the dead-letter target though no ``delivery_limit`` is set: the same
    declare from a raw client is accepted, one without the target is refused (406)."""
    config = QueueConfig(queue_type="quorum")
    target = services.target("quorumdlx", queue_config=config)
    _, handle = services.build()
    await services.consume(handle, target)
    queue = target.queue_name
    wanted = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"{queue}.dlq",
    }
    await amqp_channel.queue_declare(queue, durable=True, arguments=wanted)
    probe = await amqp_channel.connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="x-dead-letter"):
        await probe.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


@pytest.mark.real_broker
async def test_a_quorum_queue_declared_without_a_dead_letter_target_is_used_as_it_is(
    services: Services, amqp_channel: Channel, caplog: pytest.LogCaptureFixture
) -> None:
    """One an older eventrabbit declared (no ``delivery_limit``, so no target): consumed, with
    a warning that says how to give it one."""
    config = QueueConfig(queue_type="quorum")
    target = services.target("quorumold", queue_config=config)
    queue = target.queue_name
    await amqp_channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    events, handle = services.build()
    handled: Calls[int] = Calls()

    @events.consumer("OLD")
    async def old(n: int) -> None:
        handled.add(n)

    with caplog.at_level(logging.WARNING, logger="eventrabbit.topology"):
        await services.consume(handle, target)
    await publish_raw(amqp_channel, event("OLD", {"n": 1}), queue)
    assert await handled.count(1) == [1]
    [warning] = [r for r in caplog.records if "no dead-letter target" in r.getMessage()]
    assert f"{queue}.dlq" in warning.getMessage()


@pytest.mark.real_broker
async def test_a_quorum_queue_with_other_arguments_still_clashes(
    services: Services, amqp_channel: Channel
) -> None:
    target = services.target("quorumclash", queue_config=QueueConfig(queue_type="quorum"))
    queue = target.queue_name
    arguments = {"x-queue-type": "quorum", "x-max-length": 5}
    await amqp_channel.queue_declare(queue, durable=True, arguments=arguments)
    _, handle = services.build()
    with pytest.raises(TopologyError, match="exists with other arguments"):
        await services.consume(handle, target, timeout=FAIL_FAST_TIMEOUT)


# -- RabbitMQ 4.3's denied features, on the in-memory broker ----------------------------------


async def test_a_transient_queue_refused_with_the_connection_ends_consume() -> None:
    """RabbitMQ 4.3 answers the declare of a non-durable, non-exclusive queue by closing the
    connection (541): ``consume`` ends with a TopologyError that says what to do, at once,
    instead of reconnecting forever."""
    with memory_broker() as broker:
        broker.deny("transient_nonexcl_queues")
        _, handle = eventrabbit.build_event_dependencies(
            broker.url, queue_config=QueueConfig(durable=False)
        )
        target = ConsumeChannel(broker.url, "transient")
        task = asyncio.create_task(handle.consume(target))
        try:
            with pytest.raises(TopologyError) as info:
                await handle.ready(target, timeout=FAIL_FAST_TIMEOUT)
            [status] = handle.status()
        finally:
            await handle.close()
            await asyncio.gather(task, return_exceptions=True)
        text = str(info.value)
        assert "'transient'" in text
        assert "transient_nonexcl_queues" in text
        assert "durable=True" in text
        assert info.value.queue == "transient"
        assert status.ended
        assert status.reconnects == 0


async def test_durable_queues_are_declared_where_transient_ones_are_denied() -> None:
    with memory_broker() as broker:
        broker.deny("transient_nonexcl_queues", "global_qos")
        events, handle = eventrabbit.build_event_dependencies(broker.url)
        handled: Calls[int] = Calls()

        @events.consumer("PING")
        async def ping(n: int) -> None:
            handled.add(n)

        target = ConsumeChannel(broker.url, "durable")
        task = asyncio.create_task(handle.consume(target))
        try:
            await handle.ready(target, timeout=FAIL_FAST_TIMEOUT)
            await events.publish("", "PING", {"n": 1}, key="durable")
            assert await handled.count(1) == [1]
        finally:
            await handle.close()
            await asyncio.gather(task, return_exceptions=True)
        assert {q: broker.queues[q].durable for q in broker.queues_declared} == {
            "durable": True,
            "durable.delay": True,
            "durable.dlq": True,
        }


@pytest.mark.parametrize(
    ("feature", "call"),
    [
        pytest.param(
            "transient_nonexcl_queues",
            lambda channel: channel.queue_declare("t", durable=False),
            id="transient-queue",
        ),
        pytest.param(
            "global_qos",
            lambda channel: channel.basic_qos(prefetch_count=1, global_=True),
            id="qos",
        ),
    ],
)
async def test_the_in_memory_broker_refuses_a_denied_feature_with_the_connection(
    feature: str, call: Callable[[Channel], Awaitable[object]]
) -> None:
    """What makes the tests above mean something: a raw client meets the refusal."""
    with memory_broker() as broker:
        broker.deny(feature)
        connection = await open_connection(broker.url)
        try:
            channel = await connection.channel()
            with pytest.raises(aiormq.exceptions.ConnectionInternalError, match=feature):
                await call(channel)
            assert connection.is_closed
        finally:
            await connection.close()


def test_the_in_memory_broker_denies_only_what_it_knows() -> None:
    with memory_broker() as broker, pytest.raises(ValueError, match="classic_queue_mirroring"):
        broker.deny("classic_queue_mirroring")


@pytest.mark.real_broker  # 3.10 still takes transient non-exclusive queues
async def test_transient_queues_still_work_where_the_broker_permits_them(
    services: Services,
) -> None:
    events, handle = services.build(queue_config=QueueConfig(durable=False))
    handled: Calls[int] = Calls()

    @events.consumer("PING")
    async def ping(n: int) -> None:
        handled.add(n)

    target = services.target("transient")
    await services.consume(handle, target)
    await events.publish("", "PING", {"n": 2}, key=target.queue_name)
    assert await handled.count(1) == [2]


# -- global QoS ------------------------------------------------------------------------------


@pytest.mark.real_broker  # rabbitmqctl list_channels
async def test_no_channel_has_a_global_prefetch(services: Services) -> None:
    url, name = named(services.url, "qos")
    events, handle = services.build(url, queue_config=QueueConfig(prefetch_count=7))

    @events.consumer("PING")
    async def ping() -> None:
        pass

    target = services.target("qos", url=url)
    await services.consume(handle, target)
    [(pid, _)] = await named_connections(name)
    out = await rabbitmqctl(
        "list_channels", "--no-table-headers", "connection", "prefetch_count",
        "global_prefetch_count",
    )  # fmt: skip
    ours = [line.split("\t")[1:] for line in out.splitlines() if line.startswith(pid)]
    assert ours, out
    assert all(global_ == "0" for _, global_ in ours), ours
    assert ["7", "0"] in ours, "the consuming channel's prefetch is per consumer"


# -- limits ----------------------------------------------------------------------------------

Limited = Callable[[str], Awaitable[str]]


@pytest.fixture
async def limited() -> AsyncIterator[Limited]:
    """Makes a vhost with the given limits (JSON) for guest; returns its URL; deletes it after."""
    made: list[str] = []

    async def make(limits: str) -> str:
        vhost = f"test.limits.{uuid.uuid4().hex[:8]}"
        await rabbitmqctl("add_vhost", vhost)
        made.append(vhost)
        user = URL(BROKER_URL).user or "guest"
        await rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        await rabbitmqctl("set_vhost_limits", "-p", vhost, limits)
        return str(URL(BROKER_URL).with_path("/" + quote(vhost, safe=""), encoded=True))

    try:
        yield make
    finally:
        for vhost in made:
            await rabbitmqctl("delete_vhost", vhost)


@pytest.mark.real_broker  # vhost limits: rabbitmqctl
@pytest.mark.parametrize(("max_queues", "refused"), [(0, "q"), (1, "q.delay"), (2, "q.dlq")])
async def test_a_declare_over_the_vhosts_queue_limit_ends_consume(
    limited: Limited, services: Services, max_queues: int, refused: str
) -> None:
    url = await limited(f'{{"max-queues": {max_queues}}}')
    _, handle = services.build(url)
    target = ConsumeChannel(url, "q")
    with pytest.raises(TopologyError) as info:
        await services.consume(handle, target, timeout=FAIL_FAST_TIMEOUT)
    text = str(info.value)
    assert f"refused to declare queue {refused!r}" in text, text
    assert "queue limit in vhost 'test.limits." in text
    assert f"({max_queues}) is reached" in text
    assert "set_vhost_limits" in text
    assert info.value.queue == "q"
    [status] = handle.status()
    assert status.ended
    assert status.reconnects == 0
