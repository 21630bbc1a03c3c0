"""eventrabbit.contrib.prometheus without a broker: the bounded label helpers, the hook driven
with the seam's own dataclasses, and ``import eventrabbit`` not importing prometheus_client.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from eventrabbit import (
    Call,
    ConnectionEvent,
    ConnectionRole,
    ConnectionState,
    Delivery,
    InvalidMessage,
    Outcome,
    Publish,
    PublishKind,
    Result,
)
from eventrabbit.contrib.prometheus import (
    OTHER,
    UNKNOWN,
    ActionLabels,
    PrometheusHooks,
    reason_class,
)


def delivery(action: str | None, queue: str = "q") -> Delivery:
    return Delivery(queue, "", queue, action, "m-1", None, 0, False, {})


def test_a_trusted_action_is_learnt_and_an_untrusted_one_only_used_once_known() -> None:
    labels = ActionLabels()
    assert labels.label(None, trusted=True) == UNKNOWN
    assert labels.label("NEW", trusted=False) == UNKNOWN
    assert labels.label("NEW", trusted=True) == "NEW"
    assert labels.label("NEW", trusted=False) == "NEW"


def test_actions_given_up_front_are_known_and_past_the_limit_new_ones_are_other() -> None:
    labels = ActionLabels(["A", "B"], limit=3)
    assert labels.label("B", trusted=False) == "B"
    assert labels.label("C", trusted=True) == "C"
    assert labels.label("D", trusted=True) == OTHER
    assert labels.label("A", trusted=True) == "A"
    assert labels.known == {"A", "B", "C"}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("free text 123"), "ValueError"),
        (InvalidMessage("no handler for action 'x'"), "InvalidMessage"),
        (None, UNKNOWN),
    ],
)
def test_the_reason_is_a_class_name_never_the_message(
    error: BaseException | None, expected: str
) -> None:
    assert reason_class(error) == expected


def test_the_hook_updates_its_metrics_from_the_seams_dataclasses() -> None:
    registry = CollectorRegistry()
    hook = PrometheusHooks(registry, namespace="svc")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"svc_{name}", labels)

    ok = delivery("OK")
    state = hook.delivery_started(ok)
    assert value("messages_in_flight", queue="q") == 1
    hook.delivery_finished(state, ok, Result(Outcome.RETRIED, 0.5, ValueError("x")))
    assert value("messages_in_flight", queue="q") == 0
    assert value("retries_total", queue="q", action="OK") == 1
    assert value("handler_duration_seconds_sum", queue="q", action="OK") == 0.5

    bad = delivery("NAMED-BY-BAD-INPUT")
    hook.delivery_finished(
        hook.delivery_started(bad), bad, Result(Outcome.DEAD_LETTERED, 0.1, InvalidMessage("x"))
    )
    labels = {"queue": "q", "action": UNKNOWN, "reason": "InvalidMessage"}
    assert value("dead_letters_total", **labels) == 1

    publish = Publish(PublishKind.REPLY, "", "amq.rabbitmq.reply-to.abc", None, None, "c-1")
    hook.publish_finished(None, publish, Result(Outcome.DROPPED, 0.0))
    labels = {"exchange": "", "action": UNKNOWN, "kind": "reply", "outcome": "dropped"}
    assert value("messages_published_total", **labels) == 1

    call = Call("OK", "", "q", "c-2")
    hook.call_finished(None, call, Result(Outcome.TIMED_OUT, 3.0))
    assert value("rpc_calls_total", action="OK", outcome="timed-out") == 1
    assert value("rpc_duration_seconds_sum", action="OK") == 3.0

    for state_, connected in [
        (ConnectionState.CONNECTED, 1),
        (ConnectionState.LOST, 0),
        (ConnectionState.RECONNECTED, 1),
    ]:
        hook.connection_changed(ConnectionEvent(state_, "q", "amqp://x"))
        assert value("connected", role="consumer", queue="q") == connected
    assert value("reconnects_total", role="consumer", queue="q") == 1
    publisher = ConnectionRole.PUBLISHER
    for state_, blocked in [
        (ConnectionState.CONNECTED, None),
        (ConnectionState.BLOCKED, 1),
        (ConnectionState.UNBLOCKED, 0),
        (ConnectionState.BLOCKED, 1),
        (ConnectionState.LOST, 0),  # a new connection starts unblocked
    ]:
        hook.connection_changed(ConnectionEvent(state_, None, "amqp://x", "alarm", publisher))
        assert value("blocked", role="publisher", queue="") == blocked
    assert value("connected", role="publisher", queue="") == 0


def test_a_second_hook_on_the_same_registry_is_refused() -> None:
    registry = CollectorRegistry()
    PrometheusHooks(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusHooks(registry)
    PrometheusHooks(registry, namespace="other")  # another namespace is fine


def test_importing_eventrabbit_does_not_import_prometheus_client() -> None:
    code = "import sys, eventrabbit; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_a_histogram_kept_as_plain_numbers_is_exposed_cumulatively() -> None:
    registry = CollectorRegistry()
    hook = PrometheusHooks(registry)
    for seconds in (0.003, 0.2, 0.2, 20.0):
        hook.call_finished(None, Call("OK", "", "q", "c"), Result(Outcome.REPLIED, seconds))

    def bucket(le: str) -> float | None:
        labels = {"action": "OK", "le": le}
        return registry.get_sample_value("eventrabbit_rpc_duration_seconds_bucket", labels)

    assert bucket("0.001") is None  # not a bucket of the default set
    assert (bucket("0.005"), bucket("0.1"), bucket("0.25"), bucket("10.0")) == (1, 1, 3, 3)
    assert bucket("+Inf") == 4
    count = registry.get_sample_value("eventrabbit_rpc_duration_seconds_count", {"action": "OK"})
    total = registry.get_sample_value("eventrabbit_rpc_duration_seconds_sum", {"action": "OK"})
    assert (count, total) == (4, pytest.approx(20.403))
    calls = registry.get_sample_value(
        "eventrabbit_rpc_calls_total", {"action": "OK", "outcome": "replied"}
    )
    assert calls == 4
