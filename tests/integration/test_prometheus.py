"""eventrabbit.contrib.prometheus end to end, on both brokers: real traffic (a handled message,
one retried then handled, dead letters of a failing handler and of bad input, an unroutable
publish, an RPC call, a dropped connection), then the metrics read from the hook's own
``CollectorRegistry``. A second hook records what ended, so the test waits on events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiormq.abc
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eventrabbit import (
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Delivery,
    Hooks,
    Publish,
    Result,
)
from eventrabbit.common import ConsumeChannel
from eventrabbit.contrib.prometheus import PrometheusHooks
from tests.conftest import Services
from tests.helpers import Calls, event, named, publish_raw
from tests.integration.test_hooks import serve

WAIT = 15.0
P = "eventrabbit_"


class Ended(Hooks):
    """Listed after the Prometheus hook: records what ended, and the ``connected`` gauge as
    the Prometheus hook (told first) left it at each connection event."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries: Calls[tuple[Delivery, Result]] = Calls()
        self.publishes: Calls[tuple[Publish, Result]] = Calls()
        self.connections: Calls[tuple[ConnectionState, float | None]] = Calls()

    def delivery_finished(self, state: Any, delivery: Delivery, result: Result) -> None:
        self.deliveries.add((delivery, result))

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        self.publishes.add((publish, result))

    def connection_changed(self, event: ConnectionEvent) -> None:
        if event.role is not ConnectionRole.CONSUMER:
            return
        labels = {"role": "consumer", "queue": event.queue or ""}
        gauge = self.registry.get_sample_value(P + "connected", labels)
        self.connections.add((event.state, gauge))


Start = Callable[..., Awaitable[tuple[Any, Ended, ConsumeChannel]]]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def start(services: Services, registry: CollectorRegistry) -> Start:
    async def make(url: str | None = None) -> tuple[Any, Ended, ConsumeChannel]:
        ended = Ended(registry)
        hooks: list[Hooks] = [PrometheusHooks(registry), ended]
        events, _, target = await serve(services, hooks, url=url, bad=KeyError, prefix="prom")
        return events, ended, target

    return make


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(P + name, labels)


async def test_traffic_is_counted_with_bounded_labels(
    start: Start, registry: CollectorRegistry, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    events, ended, target = await start()
    q = target.queue_name
    await events.publish("", "OK", {"n": 1}, key=q)
    await events.publish("", "FLAKY", {"n": 2}, key=q)
    await events.publish("", "BAD", {"n": 3}, key=q)
    await events.publish("", "OK", {"n": 4}, key=f"{q}-nobody")  # unroutable
    await publish_raw(amqp_channel, b"{not json", q)
    await publish_raw(amqp_channel, event(f"NOPE-{q}", {"n": 5}), q)  # no handler: free text
    # OK, FLAKY twice, BAD twice, the two bad inputs: seven deliveries.
    await ended.deliveries.count(7, timeout=WAIT)

    consumed = {
        ("OK", "acked"): 1.0,
        ("FLAKY", "retried"): 1.0,
        ("FLAKY", "acked"): 1.0,
        ("BAD", "retried"): 1.0,
        ("BAD", "dead-lettered"): 1.0,
        ("unknown", "dead-lettered"): 2.0,
    }
    for (action, outcome), count in consumed.items():
        got = sample(registry, "messages_consumed_total", queue=q, action=action, outcome=outcome)
        assert got == count, (action, outcome)
    for action, count in {"OK": 1.0, "FLAKY": 2.0, "BAD": 2.0, "unknown": 2.0}.items():
        got = sample(registry, "handler_duration_seconds_count", queue=q, action=action)
        assert got == count, action
        assert sample(registry, "handler_duration_seconds_sum", queue=q, action=action) >= 0
    assert sample(registry, "messages_in_flight", queue=q) == 0
    assert sample(registry, "retries_total", queue=q, action="FLAKY") == 1
    assert sample(registry, "retries_total", queue=q, action="BAD") == 1
    assert sample(registry, "dead_letters_total", queue=q, action="BAD", reason="KeyError") == 1
    assert (
        sample(registry, "dead_letters_total", queue=q, action="unknown", reason="InvalidMessage")
        == 2
    )

    def published(action: str, outcome: str) -> float | None:
        labels = {"exchange": "", "action": action, "kind": "event", "outcome": outcome}
        return sample(registry, "messages_published_total", **labels)

    assert published("OK", "confirmed") == 1
    assert published("OK", "unroutable") == 1
    assert published("FLAKY", "confirmed") == 1
    assert published("BAD", "confirmed") == 1
    assert sample(registry, "publish_duration_seconds_count", exchange="", kind="event") == 4

    text = generate_latest(registry).decode()
    assert "NOPE" not in text  # an action only bad input named is never a label value
    assert "bad 3" not in text  # nor is an error's message
    # Every label value is one this test chose or a fixed word: no ids, keys or free text.
    values = {
        value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for name, value in s.labels.items()
        if name != "le"
    }
    outcomes = {"acked", "retried", "dead-lettered", "confirmed", "unroutable"}
    fixed = {"", q, "OK", "FLAKY", "BAD", "unknown", "event", "KeyError", "InvalidMessage"}
    fixed |= {"consumer", "publisher"}  # connection roles
    assert values <= fixed | outcomes, values - fixed - outcomes
    assert sample(registry, "connected", role="consumer", queue=q) == 1


async def test_an_rpc_call_and_its_reply_are_counted(
    start: Start, registry: CollectorRegistry
) -> None:
    events, ended, target = await start()
    assert await events.call("OK", {"n": 7}, key=target.queue_name, timeout=WAIT) == 7
    await ended.publishes.count(2, timeout=WAIT)  # the request and the reply
    assert sample(registry, "rpc_calls_total", action="OK", outcome="replied") == 1
    assert sample(registry, "rpc_duration_seconds_count", action="OK") == 1
    request = {"exchange": "", "action": "OK", "kind": "request", "outcome": "confirmed"}
    assert sample(registry, "messages_published_total", **request) == 1
    reply = {"exchange": "", "action": "unknown", "kind": "reply", "outcome": "confirmed"}
    assert sample(registry, "messages_published_total", **reply) == 1
    assert sample(registry, "publish_duration_seconds_count", exchange="", kind="reply") == 1

    with pytest.raises(Exception, match="no queue receives"):
        await events.call("OK", {"n": 8}, key=f"{target.queue_name}-nobody", timeout=WAIT)
    assert sample(registry, "rpc_calls_total", action="OK", outcome="unroutable") == 1


async def test_a_reconnect_is_counted_and_the_gauge_follows_the_connection(
    start: Start,
    registry: CollectorRegistry,
    broker_url: str,
    drop_connections: Callable[[str], Awaitable[None]],
) -> None:
    url, name = named(broker_url, "prom")
    _, ended, target = await start(url=url)
    q = target.queue_name
    assert sample(registry, "reconnects_total", role="consumer", queue=q) is None
    await drop_connections(name)
    await ended.connections.count(3, timeout=WAIT)
    assert ended.connections.values[:3] == [
        (ConnectionState.CONNECTED, 1.0),
        (ConnectionState.LOST, 0.0),
        (ConnectionState.RECONNECTED, 1.0),
    ]
    assert sample(registry, "reconnects_total", role="consumer", queue=q) == 1
    assert sample(registry, "connected", role="consumer", queue=q) == 1
