"""The hook dispatcher (``eventrabbit.fanout``) without a broker: fan-out order, states handed
back, error containment and its logging, publish outcomes, and ``hooks=`` checking."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pamqp import commands as spec

import eventrabbit
from eventrabbit import (
    Call,
    ConfigurationError,
    Hooks,
    Outcome,
    Publish,
    PublishKind,
    Result,
    UnroutableError,
    build_event_dependencies,
)
from eventrabbit.fanout import HookSet

URL = "amqp://guest:guest@localhost:5672/"
PUBLISH = Publish(PublishKind.EVENT, "shop", "order.placed", "ORDER_PLACED", "id-1", None)
CALL = Call("ADD", "", "calculator", "corr-1")


class Tracing(Hooks):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        self.log.append(f"{self.name} start")
        headers[self.name] = "1"
        return f"{self.name}-state"

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        self.log.append(f"{self.name} finish {state} {result.outcome.value}")

    def call_started(self, call: Call) -> Any:
        return call.correlation_id

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        self.log.append(f"{self.name} call {state} {result.outcome.value}")


class Broken(Hooks):
    def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
        raise RuntimeError("broken start")

    def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
        raise AssertionError("never told the end of what it could not start")

    def call_finished(self, state: Any, call: Call, result: Result) -> None:
        raise RuntimeError("broken finish")


def test_hooks_start_in_order_and_finish_in_reverse_with_their_state() -> None:
    log: list[str] = []
    hooks = HookSet([Tracing("a", log), Tracing("b", log)])
    headers: dict[str, Any] = {}
    hooks.publish(PUBLISH, headers).end(Outcome.CONFIRMED)
    assert log == ["a start", "b start", "b finish b-state confirmed", "a finish a-state confirmed"]
    assert headers == {"a": "1", "b": "1"}


def test_a_raising_hook_is_contained_logged_once_and_skipped_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="eventrabbit.fanout")
    log: list[str] = []
    hooks = HookSet([Broken(), Tracing("ok", log)])
    for _ in range(3):
        hooks.publish(PUBLISH, {}).end(Outcome.CONFIRMED)
        hooks.call(CALL).end(Outcome.REPLIED)
    assert log.count("ok finish ok-state confirmed") == 3
    assert log.count("ok call corr-1 replied") == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert sorted(r.getMessage().split(" raised in ")[1].split(" ")[0] for r in errors) == [
        "call_finished",
        "publish_started",
    ]
    assert all(r.exc_info for r in errors)
    assert getattr(errors[0], "hook", None) == "Broken"
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 4
    assert hooks.errors == 6


@pytest.mark.parametrize(
    ("routed", "error", "outcome"),
    [
        (True, None, Outcome.CONFIRMED),
        (None, None, Outcome.CONFIRMED),
        (False, None, Outcome.UNROUTABLE),
        (None, UnroutableError("no queue"), Outcome.UNROUTABLE),
        (None, eventrabbit.PublishTimeout("late"), Outcome.FAILED),
    ],
)
async def test_published_tells_the_outcome_and_adds_headers_to_a_copy(
    routed: bool | None, error: Exception | None, outcome: Outcome
) -> None:
    seen: list[tuple[Outcome, BaseException | None, dict[str, Any]]] = []

    class Seeing(Hooks):
        def publish_started(self, publish: Publish, headers: dict[str, Any]) -> Any:
            headers["traceparent"] = "00-1-2-01"
            return headers

        def publish_finished(self, state: Any, publish: Publish, result: Result) -> None:
            seen.append((result.outcome, result.error, state))

    callers = {"mine": 1}
    properties = spec.Basic.Properties(headers=callers)

    async def send() -> bool | None:
        assert properties.headers == {"mine": 1, "traceparent": "00-1-2-01"}  # before sending
        if error is not None:
            raise error
        return routed

    if error is None:
        await HookSet([Seeing()]).published(PUBLISH, properties, send())
    else:
        with pytest.raises(type(error)):
            await HookSet([Seeing()]).published(PUBLISH, properties, send())
    [(told, told_error, headers)] = seen
    assert (told, told_error) == (outcome, error)
    assert headers is properties.headers
    assert callers == {"mine": 1}  # the caller's dict is left alone


@pytest.mark.parametrize(
    ("member", "value"),
    [
        (Outcome.ACKED, "acked"),
        (Outcome.RETRIED, "retried"),
        (Outcome.DEAD_LETTERED, "dead-lettered"),
        (Outcome.LEFT_UNACKED, "left-unacked"),
        (Outcome.CONFIRMED, "confirmed"),
        (Outcome.UNROUTABLE, "unroutable"),
        (Outcome.FAILED, "failed"),
        (Outcome.DROPPED, "dropped"),
        (Outcome.REPLIED, "replied"),
        (Outcome.TIMED_OUT, "timed-out"),
    ],
)
def test_outcome_values_are_the_log_fields(member: Outcome, value: str) -> None:
    assert member == value
    assert Outcome(value) is member


def test_the_seed_signature_keeps_working_and_no_hooks_means_none() -> None:
    _, handle = build_event_dependencies(URL, 300, None, None)
    assert handle.hooks is None
    _, handle = build_event_dependencies(URL, hooks=[])
    assert handle.hooks is None
    events, handle = build_event_dependencies(URL, hooks=[Hooks()])
    assert handle.hooks is not None
    assert events.publisher._hooks is handle.hooks
    assert events.rpc._hooks is handle.hooks


@pytest.mark.parametrize("hooks", [[object()], Hooks(), "hooks", [Hooks, Hooks()]])
def test_hooks_must_be_a_list_of_hooks(hooks: Any) -> None:
    with pytest.raises(ConfigurationError, match="Hooks"):
        build_event_dependencies(URL, hooks=hooks)


def test_the_base_hooks_are_no_ops() -> None:
    hook = Hooks()
    assert hook.publish_started(PUBLISH, {}) is None
    assert hook.call_started(CALL) is None
    hook.publish_finished(None, PUBLISH, Result(Outcome.CONFIRMED, 0.0))
