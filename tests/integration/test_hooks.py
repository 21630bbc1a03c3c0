"""The instrumentation seam end to end, on both brokers: what a recording hook is told about
deliveries (acked, retried, dead-lettered), publishes (confirmed, unroutable), replies, RPC
calls and a lost connection; headers a hook adds arriving on the consumed message and in its
retry copy; a raising hook changing nothing; and the ``extra`` fields of per-message logs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq.abc
import pytest

from eventrabbit import (
    Call,
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Delivery,
    Events,
    FailureDecision,
    Handle,
    Hooks,
    Outcome,
    Publish,
    PublishKind,
    ReconnectConfig,
    Result,
    RetryConfig,
)
from eventrabbit.common import ConsumeChannel, QueueConfig
from tests.conftest import Services
from tests.helpers import Calls, censor_url, collect, eventually, named, publish_raw, queue_depth

TRACE = "traceparent"
WAIT = 15.0


class Recording(Hooks):
    """Records every call; adds a ``traceparent`` to what it publishes."""

    def __init__(self) -> None:
        self.deliveries: Calls[tuple[Delivery, Result]] = Calls()
        self.publishes: Calls[tuple[Publish, Result]] = Calls()
        self.calls: Calls[tuple[Call, Result]] = Calls()
        self.decisions: Calls[FailureDecision] = Calls()
        self.connections: Calls[ConnectionEvent] = Calls()
        self.started: list[Delivery] = []
        self.counter = 0

    def delivery_started(self, delivery: Delivery) -> Any:
        self.started.append(delivery)
        return ("state", delivery.message_id)

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        assert state == ("state", delivery.message_id)
        self.deliveries.add((delivery, result))

    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        self.counter += 1
        headers[TRACE] = f"trace-{self.counter}"
        return headers[TRACE]

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        self.publishes.add((publish, result))

    def call_started(self, call: Call) -> Any:
        return call.correlation_id

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        assert state == call.correlation_id
        self.calls.add((call, result))

    def failure_decided(self, decision: FailureDecision) -> None:
        self.decisions.add(decision)

    def connection_changed(self, event: ConnectionEvent) -> None:
        self.connections.add(event)


class Raising(Hooks):
    """Raises in every method."""

    def delivery_started(self, delivery: Delivery) -> Any:
        raise RuntimeError("delivery_started")

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        raise RuntimeError("delivery_finished")

    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        headers["half"] = "written"
        raise RuntimeError("publish_started")

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        raise RuntimeError("publish_finished")

    def call_started(self, call: Call) -> Any:
        raise RuntimeError("call_started")

    def failure_decided(self, decision: FailureDecision) -> None:
        raise RuntimeError("failure_decided")

    def connection_changed(self, event: ConnectionEvent) -> None:
        raise RuntimeError("connection_changed")


Start = Callable[..., Awaitable[tuple[Any, Any, ConsumeChannel]]]


async def serve(
    services: Services,
    hooks: list[Hooks],
    *,
    url: str | None = None,
    max_retries: int = 1,
    bad: type[Exception] = ValueError,
    prefix: str = "hooks",
) -> tuple[Events, Handle, ConsumeChannel]:
    """A consuming service with hooks: OK returns its ``n``, FLAKY fails the first try of each
    ``n``, BAD always raises ``bad``; retries come at once."""
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=max_retries, retry_delay_seconds=0),
        queue_config=QueueConfig(prefetch_count=5, grace_timeout=2),
        reconnect=ReconnectConfig(initial_delay=0.05, max_delay=0.2),
        hooks=hooks,
    )
    flaky: set[int] = set()

    @events.consumer("OK")
    async def ok(n: int) -> int:
        return n

    @events.consumer("FLAKY")
    async def flaky_once(n: int) -> None:
        if n not in flaky:
            flaky.add(n)
            raise ValueError(f"first try of {n}")

    @events.consumer("BAD")
    async def bad_always(n: int) -> None:
        raise bad(f"bad {n}")

    target = services.target(prefix, url=url)
    await services.consume(handle, target)
    return events, handle, target


@pytest.fixture
def start(services: Services) -> Start:
    async def make(*hooks: Hooks, url: str | None = None, max_retries: int = 1) -> Any:
        return await serve(services, list(hooks), url=url, max_retries=max_retries)

    return make


def by_action(hook: Recording, action: str | None) -> list[tuple[Delivery, Result]]:
    """The deliveries of ``action``, by retry count (a copy may end before its original)."""
    found = [(d, r) for d, r in hook.deliveries.values if d.action == action]
    return sorted(found, key=lambda pair: pair[0].retry_count)


async def test_a_recording_hook_sees_every_outcome_and_headers_travel(
    start: Start, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    hook = Recording()
    events, handle, target = await start(hook)
    queue = target.queue_name
    await events.publish("", "OK", {"n": 1}, key=queue)
    await events.publish("", "FLAKY", {"n": 2}, key=queue)
    await events.publish("", "BAD", {"n": 3}, key=queue)
    await events.publish("", "OK", {"n": 4}, key=f"{queue}-nobody")  # unroutable
    await publish_raw(amqp_channel, b"{not json", queue)
    # OK, FLAKY twice, BAD twice, the bad body: six deliveries.
    await hook.deliveries.count(6, timeout=WAIT)

    [(ok, ok_result)] = by_action(hook, "OK")
    assert ok_result.outcome is Outcome.ACKED
    assert ok_result.error is None
    assert ok_result.duration >= 0
    assert (ok.queue, ok.exchange, ok.routing_key, ok.retry_count) == (queue, "", queue, 0)
    assert ok.headers[TRACE] == "trace-1"  # added by the hook on publish, read on delivery

    flaky = by_action(hook, "FLAKY")
    assert [r.outcome for _, r in flaky] == [Outcome.RETRIED, Outcome.ACKED]
    assert [d.retry_count for d, _ in flaky] == [0, 1]
    assert isinstance(flaky[0][1].error, ValueError)
    assert flaky[0][0].headers[TRACE] == flaky[1][0].headers[TRACE] == "trace-2"  # the copy
    assert flaky[0][0].message_id == flaky[1][0].message_id

    bad = by_action(hook, "BAD")
    assert [r.outcome for _, r in bad] == [Outcome.RETRIED, Outcome.DEAD_LETTERED]
    [(_, unreadable_result)] = by_action(hook, None)
    assert unreadable_result.outcome is Outcome.DEAD_LETTERED
    decisions = [(d.action, d.outcome, d.target) for d in hook.decisions.values]
    assert sorted(decisions, key=str) == sorted(
        [
            ("FLAKY", Outcome.RETRIED, f"{queue}.delay"),
            ("BAD", Outcome.RETRIED, f"{queue}.delay"),
            ("BAD", Outcome.DEAD_LETTERED, f"{queue}.dlq"),
            (None, Outcome.DEAD_LETTERED, f"{queue}.dlq"),
        ],
        key=str,
    )

    events_published = [(p.action, r.outcome) for p, r in hook.publishes.values]
    assert ("OK", Outcome.CONFIRMED) in events_published
    assert ("OK", Outcome.UNROUTABLE) in events_published
    [connected] = consumers(hook)
    assert (connected.state, connected.queue) == (ConnectionState.CONNECTED, queue)
    # The publisher's own connection is told too, without a queue.
    [publisher] = [e for e in hook.connections.values if e.role is ConnectionRole.PUBLISHER]
    assert (publisher.state, publisher.queue) == (ConnectionState.CONNECTED, None)

    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0


async def test_an_rpc_call_is_the_parent_of_its_request_and_its_reply_is_a_publish(
    start: Start,
) -> None:
    hook = Recording()
    events, _, target = await start(hook)
    assert await events.call("OK", {"n": 7}, key=target.queue_name, timeout=WAIT) == 7
    [(call, result)] = hook.calls.values
    assert (call.action, call.routing_key, result.outcome) == (
        "OK",
        target.queue_name,
        Outcome.REPLIED,
    )
    await hook.publishes.count(2, timeout=WAIT)
    kinds = {p.kind: (p, r) for p, r in hook.publishes.values}
    request, request_result = kinds[PublishKind.REQUEST]
    assert request.correlation_id == call.correlation_id
    assert request_result.outcome is Outcome.CONFIRMED
    reply, reply_result = kinds[PublishKind.REPLY]
    assert reply.correlation_id == call.correlation_id
    assert reply_result.outcome is Outcome.CONFIRMED
    [(delivery, _)] = hook.deliveries.values
    assert delivery.headers[TRACE] == "trace-1"  # the request's header, read by the server

    with pytest.raises(Exception, match="no queue receives"):
        await events.call("OK", {"n": 8}, key=f"{target.queue_name}-nobody", timeout=WAIT)
    assert hook.calls.values[-1][1].outcome is Outcome.UNROUTABLE


async def test_a_lost_connection_is_told_and_so_is_the_reconnect(
    start: Start, broker_url: str, drop_connections: Callable[[str], Awaitable[None]]
) -> None:
    hook = Recording()
    url, name = named(broker_url, "hooks")
    await start(hook, url=url)
    await drop_connections(name)
    await hook.connections.count(3, timeout=WAIT)
    states = [e.state for e in consumers(hook)]
    assert states[:3] == [
        ConnectionState.CONNECTED,
        ConnectionState.LOST,
        ConnectionState.RECONNECTED,
    ]
    assert consumers(hook)[1].reason


async def test_the_publishers_and_rpc_clients_connections_are_told(
    services: Services, broker_url: str, drop_connections: Callable[[str], Awaitable[None]]
) -> None:
    hook = Recording()
    url, name = named(broker_url, "own")
    events, handle = services.build(url, hooks=[hook])

    @events.consumer("OK")
    async def ok(n: int) -> int:
        return n

    target = services.target("own", url=url)
    await services.consume(handle, target)
    await events.publish("", "OK", {"n": 1}, key=target.queue_name)
    assert await events.call("OK", {"n": 2}, key=target.queue_name, timeout=WAIT) == 2

    def of(role: ConnectionRole) -> list[tuple[ConnectionState, str | None]]:
        return [(e.state, e.queue) for e in hook.connections.values if e.role is role]

    assert of(ConnectionRole.PUBLISHER) == [(ConnectionState.CONNECTED, None)]
    assert of(ConnectionRole.RPC) == [(ConnectionState.CONNECTED, None)]
    await drop_connections(name)  # the consumer's, the publisher's and the RPC client's
    await hook.connections.count(3 + 4, timeout=WAIT)  # each lost; the consumer's back

    async def lost(role: ConnectionRole) -> bool:
        return (ConnectionState.LOST, None) in of(role)

    await eventually(lambda: lost(ConnectionRole.PUBLISHER), what="the publisher's loss")
    await eventually(lambda: lost(ConnectionRole.RPC), what="the RPC client's loss")
    # Both reopen on their next use, and say so.
    await events.publish("", "OK", {"n": 3}, key=target.queue_name)
    assert await events.call("OK", {"n": 4}, key=target.queue_name, timeout=WAIT) == 4
    for role in (ConnectionRole.PUBLISHER, ConnectionRole.RPC):
        assert [state for state, _ in of(role)] == [
            ConnectionState.CONNECTED,
            ConnectionState.LOST,
            ConnectionState.RECONNECTED,
        ]
    own = [e for e in hook.connections.values if e.role is not ConnectionRole.CONSUMER]
    assert all(e.broker == censor_url(url) for e in own)
    assert all(e.reason for e in own if e.state is ConnectionState.LOST)


def consumers(hook: Recording) -> list[ConnectionEvent]:
    """The events about consumers' connections."""
    return [e for e in hook.connections.values if e.role is ConnectionRole.CONSUMER]


async def test_a_raising_hook_changes_nothing(
    start: Start, amqp_channel: aiormq.abc.AbstractChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventrabbit.fanout")
    recording = Recording()
    events, handle, target = await start(Raising(), recording)
    queue = target.queue_name
    for n in range(5):
        await events.publish("", "OK", {"n": n}, key=queue)
    await events.publish("", "FLAKY", {"n": 9}, key=queue)
    await events.publish("", "BAD", {"n": 10}, key=queue)
    assert await events.call("OK", {"n": 11}, key=queue, timeout=WAIT) == 11
    await recording.deliveries.count(10, timeout=WAIT)

    outcomes = sorted(r.outcome.value for _, r in recording.deliveries.values)
    assert outcomes == sorted(["acked"] * 7 + ["retried", "retried", "dead-lettered"])
    # The other hook's header still went out; the raising hook's half-written one too.
    assert all(d.headers.get(TRACE) for d, _ in recording.deliveries.values)
    await handle.close()
    assert await queue_depth(amqp_channel, queue) == 0
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 1
    errors = [
        r for r in caplog.records if r.name == "eventrabbit.fanout" and r.levelno >= logging.ERROR
    ]
    methods = sorted(r.getMessage().split(" raised in ")[1].split(" ")[0] for r in errors)
    assert len(methods) == len(set(methods)), methods  # once per hook and method
    assert "delivery_started" in methods
    assert "publish_started" in methods


async def test_per_message_log_records_carry_extra_fields(
    start: Start, caplog: pytest.LogCaptureFixture, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    caplog.set_level(logging.WARNING, logger="eventrabbit")
    events, handle, target = await start(max_retries=1)
    queue = target.queue_name
    message_id = await events.publish("", "BAD", {"n": 1}, key=queue)
    await events.publish("", "OK", {"n": 2}, key=f"{queue}-nobody")
    [dead] = await collect(amqp_channel, f"{queue}.dlq", 1, timeout=WAIT)
    assert dead.header.properties.message_id == message_id
    await handle.close()

    def fields(record: logging.LogRecord) -> dict[str, Any]:
        names = ("queue", "action", "message_id", "retry_count", "outcome")
        return {name: getattr(record, name, "<missing>") for name in names}

    failures = [fields(r) for r in caplog.records if getattr(r, "message_id", None) == message_id]
    assert failures == [
        {
            "queue": queue,
            "action": "BAD",
            "message_id": message_id,
            "retry_count": 0,
            "outcome": "retried",
        },
        {
            "queue": queue,
            "action": "BAD",
            "message_id": message_id,
            "retry_count": 1,
            "outcome": "dead-lettered",
        },
    ]
    [unroutable] = [r for r in caplog.records if getattr(r, "outcome", None) == "unroutable"]
    assert getattr(unroutable, "routing_key", None) == f"{queue}-nobody"
