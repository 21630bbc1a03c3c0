"""The pure failure decision: retry or dead-letter, and the copy a failure publishes."""

from __future__ import annotations

from typing import Any

import pytest
from pamqp import commands as spec

from eventrabbit.common import RetryConfig
from eventrabbit.errors import InvalidMessage
from eventrabbit.failures import (
    BROKER_HEADERS,
    ERROR_HEADER,
    MAX_REASON_BYTES,
    MAX_RETRY_COUNT,
    ORIGINAL_USER_HEADER,
    QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    DeadLetter,
    Retry,
    bounded,
    copy_headers,
    decide,
    describe,
    last_resort,
    plan,
    retry_count,
)

ABSENT = object()  # the message carries no x-retry-count header at all


def _headers(count: object) -> dict[str, Any] | None:
    if count is ABSENT:
        return None
    return {RETRY_COUNT_HEADER: count, "x-tenant": "acme"}


def test_wire_header_names() -> None:
    assert RETRY_COUNT_HEADER == "x-retry-count"
    assert ERROR_HEADER == "x-eventrabbit-error"
    assert QUEUE_HEADER == "x-eventrabbit-queue"


# (max_retries, x-retry-count on the message, expected decision) for a handler exception.
# The reason of every DeadLetter here is describe(ValueError("boom")).
_DL = "ValueError: boom"
_TABLE = [
    # -1: retry forever
    pytest.param(-1, ABSENT, Retry(1, _DL), id="forever-absent"),
    pytest.param(-1, 0, Retry(1, _DL), id="forever-0"),
    pytest.param(-1, 1, Retry(2, _DL), id="forever-1"),
    pytest.param(-1, 2, Retry(3, _DL), id="forever-2"),
    pytest.param(-1, 3, Retry(4, _DL), id="forever-3"),
    pytest.param(-1, 7, Retry(8, _DL), id="forever-7"),
    pytest.param(-1, 10_000, Retry(10_001, _DL), id="forever-10000"),
    pytest.param(-1, "2", Retry(1, _DL), id="forever-str-counts-0"),
    pytest.param(-1, -4, Retry(1, _DL), id="forever-negative-counts-0"),
    pytest.param(-1, True, Retry(1, _DL), id="forever-bool-counts-0"),
    pytest.param(-1, 2.0, Retry(1, _DL), id="forever-float-counts-0"),
    pytest.param(-1, None, Retry(1, _DL), id="forever-null-counts-0"),
    # 0: never retry
    pytest.param(0, ABSENT, DeadLetter(_DL, 0), id="never-absent"),
    pytest.param(0, 0, DeadLetter(_DL, 0), id="never-0"),
    pytest.param(0, 1, DeadLetter(_DL, 1), id="never-1"),
    pytest.param(0, 2, DeadLetter(_DL, 2), id="never-2"),
    pytest.param(0, 3, DeadLetter(_DL, 3), id="never-3"),
    pytest.param(0, 7, DeadLetter(_DL, 7), id="never-7"),
    pytest.param(0, "2", DeadLetter(_DL, 0), id="never-str"),
    pytest.param(0, -4, DeadLetter(_DL, 0), id="never-negative"),
    pytest.param(0, True, DeadLetter(_DL, 0), id="never-bool"),
    pytest.param(0, 2.0, DeadLetter(_DL, 0), id="never-float"),
    pytest.param(0, None, DeadLetter(_DL, 0), id="never-null"),
    # 3: three retries after the first attempt, then dead-letter
    pytest.param(3, ABSENT, Retry(1, _DL), id="three-absent"),
    pytest.param(3, 0, Retry(1, _DL), id="three-0"),
    pytest.param(3, 1, Retry(2, _DL), id="three-1"),
    pytest.param(3, 2, Retry(3, _DL), id="three-2"),
    pytest.param(3, 3, DeadLetter(_DL, 3), id="three-3-exhausted"),
    pytest.param(3, 7, DeadLetter(_DL, 7), id="three-7-exhausted"),
    pytest.param(3, "2", Retry(1, _DL), id="three-str-counts-0"),
    pytest.param(3, "7", Retry(1, _DL), id="three-str7-counts-0"),
    pytest.param(3, -4, Retry(1, _DL), id="three-negative-counts-0"),
    pytest.param(3, True, Retry(1, _DL), id="three-bool-counts-0"),
    pytest.param(3, 2.0, Retry(1, _DL), id="three-float-counts-0"),
    pytest.param(3, None, Retry(1, _DL), id="three-null-counts-0"),
]


@pytest.mark.parametrize(("max_retries", "count", "expected"), _TABLE)
def test_decide_table(max_retries: int, count: object, expected: Retry | DeadLetter) -> None:
    config = RetryConfig(max_retries=max_retries, retry_delay_seconds=0.1)
    assert decide(_headers(count), ValueError("boom"), config) == expected


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(None, id="none"),
        pytest.param({}, id="empty"),
        pytest.param({"x-tenant": "acme"}, id="other-headers"),
        pytest.param({"x-death": [{"count": 5}], "x-delivery-count": 9}, id="broker-headers"),
    ],
)
def test_decide_without_retry_count_is_a_first_failure(headers: dict[str, Any] | None) -> None:
    assert retry_count(headers) == 0
    assert decide(headers, RuntimeError("x"), RetryConfig(max_retries=2)) == Retry(
        1, "RuntimeError: x"
    )


@pytest.mark.parametrize("max_retries", [-1, 0, 3])
@pytest.mark.parametrize(
    ("count", "retries"),
    [
        pytest.param(ABSENT, 0, id="absent"),
        pytest.param(0, 0, id="0"),
        pytest.param(2, 2, id="2"),
        pytest.param(7, 7, id="7"),
        pytest.param("2", 0, id="str"),
        pytest.param(True, 0, id="bool"),
    ],
)
def test_decide_invalid_message_is_always_dead_lettered(
    max_retries: int, count: object, retries: int
) -> None:
    exc = InvalidMessage('body has no "action"')
    decision = decide(_headers(count), exc, RetryConfig(max_retries=max_retries))
    assert decision == DeadLetter('body has no "action"', retries)


def test_decide_dead_letter_reason_names_the_exception_class() -> None:
    class PaymentDeclined(Exception):
        pass

    decision = decide(None, PaymentDeclined("card 4242 expired"), RetryConfig(max_retries=0))
    assert decision == DeadLetter("PaymentDeclined: card 4242 expired", 0)


def test_decide_does_not_touch_the_headers() -> None:
    headers = {RETRY_COUNT_HEADER: 1, "x-death": []}
    before = dict(headers)
    decide(headers, ValueError("x"), RetryConfig(max_retries=3))
    assert headers == before


class OrderRejected(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        pytest.param(ValueError("boom"), "ValueError: boom", id="builtin"),
        pytest.param(
            OrderRejected("order 7 is closed"), "OrderRejected: order 7 is closed", id="own"
        ),
        pytest.param(KeyError("sku"), "KeyError: 'sku'", id="key-error-repr"),
        pytest.param(ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        pytest.param(
            InvalidMessage("body is a JSON array, not an object"),
            "body is a JSON array, not an object",
            id="invalid-message-is-its-reason",
        ),
    ],
)
def test_describe(exc: BaseException, text: str) -> None:
    assert describe(exc) == text


@pytest.mark.parametrize("name", sorted(BROKER_HEADERS))
def test_copy_headers_strips_each_broker_header(name: str) -> None:
    copied = copy_headers({name: "anything", "x-tenant": "acme"}, {})
    assert copied == {"x-tenant": "acme"}


def test_broker_headers_are_exactly_the_brokers() -> None:
    assert (
        frozenset(
            {
                "x-death",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason",
                "x-last-death-exchange",
                "x-last-death-queue",
                "x-last-death-reason",
                "x-delivery-count",
                "x-acquired-count",  # RabbitMQ 4.3
            }
        )
        == BROKER_HEADERS
    )


def test_copy_headers_strips_all_broker_headers_keeps_the_rest_and_applies_extras() -> None:
    original: dict[str, Any] = {name: "broker" for name in BROKER_HEADERS}
    original.update(
        {
            "x-tenant": "acme",
            "trace-id": "abc",
            "x-eventrabbit-custom": 1,
            "nested": {"a": [1, 2]},
            RETRY_COUNT_HEADER: 1,
        }
    )
    before = dict(original)

    copied = copy_headers(original, {RETRY_COUNT_HEADER: 2, ERROR_HEADER: "ValueError: x"})

    assert copied == {
        "x-tenant": "acme",
        "trace-id": "abc",
        "x-eventrabbit-custom": 1,
        "nested": {"a": [1, 2]},
        RETRY_COUNT_HEADER: 2,
        ERROR_HEADER: "ValueError: x",
    }
    assert original == before  # the delivered message's headers are not modified
    assert copied is not original


@pytest.mark.parametrize("headers", [pytest.param(None, id="none"), pytest.param({}, id="empty")])
def test_copy_headers_without_headers_gives_the_extras(headers: dict[str, Any] | None) -> None:
    extra = {RETRY_COUNT_HEADER: 1}
    copied = copy_headers(headers, extra)
    assert copied == {RETRY_COUNT_HEADER: 1}
    assert copied is not extra


def test_copy_headers_with_no_extras_keeps_publisher_headers() -> None:
    assert copy_headers({"a": 1, "x-death": []}, {}) == {"a": 1}


def test_decisions_are_frozen_values() -> None:
    assert Retry(2, "x") == Retry(2, "x")
    assert Retry(2, "x") != Retry(3, "x")
    assert DeadLetter("r", 1) != DeadLetter("r", 2)
    with pytest.raises(AttributeError):
        Retry(1, "x").attempt = 2  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# plan: everything a copy needs, as a table (no broker)

Q = "orders"
ME = "svc"


def _props(**kwargs: Any) -> spec.Basic.Properties:
    return spec.Basic.Properties(message_id="m1", content_type="application/json", **kwargs)


# (id, properties, exception, max_retries, queue, headers, user_id, reply body or None)
_PLAN = [
    pytest.param(
        _props(),
        ValueError("boom"),
        3,
        "orders.delay",
        {RETRY_COUNT_HEADER: 1},
        None,
        None,
        id="first-failure-retried",
    ),
    pytest.param(
        _props(headers={RETRY_COUNT_HEADER: 2, "x-tenant": "acme", "x-death": [{"count": 1}]}),
        ValueError("boom"),
        3,
        "orders.delay",
        {RETRY_COUNT_HEADER: 3, "x-tenant": "acme"},
        None,
        None,
        id="retry-counts-up-strips-broker-headers",
    ),
    pytest.param(
        _props(headers={RETRY_COUNT_HEADER: 3, "x-tenant": "acme"}),
        ValueError("boom"),
        3,
        "orders.dlq",
        {
            RETRY_COUNT_HEADER: 3,
            "x-tenant": "acme",
            ERROR_HEADER: "ValueError: boom",
            QUEUE_HEADER: Q,
        },
        None,
        None,
        id="exhausted-dead-lettered",
    ),
    pytest.param(
        _props(reply_to="amq.rabbitmq.reply-to.abc", correlation_id="c1"),
        InvalidMessage('body has no "action"'),
        -1,
        "orders.dlq",
        {RETRY_COUNT_HEADER: 0, ERROR_HEADER: 'body has no "action"', QUEUE_HEADER: Q},
        None,
        b'{"error":{"type":"InvalidMessage","message":"body has no \\"action\\""}}',
        id="bad-request-dead-lettered-with-error-reply",
    ),
    pytest.param(
        _props(reply_to="caller", correlation_id="c1"),
        KeyError("sku"),
        1,
        "orders.delay",
        {RETRY_COUNT_HEADER: 1},
        None,
        None,
        id="request-retried-without-reply",
    ),
    pytest.param(
        _props(user_id="alice"),
        ValueError("boom"),
        1,
        "orders.delay",
        {RETRY_COUNT_HEADER: 1, ORIGINAL_USER_HEADER: "alice"},
        None,
        None,
        id="foreign-user-id-moved-to-a-header",
    ),
    pytest.param(
        _props(user_id=ME),
        ValueError("boom"),
        1,
        "orders.delay",
        {RETRY_COUNT_HEADER: 1},
        ME,
        None,
        id="own-user-id-kept",
    ),
    pytest.param(
        _props(headers={RETRY_COUNT_HEADER: 2**63 - 1}),
        ValueError("boom"),
        -1,
        "orders.dlq",
        {
            RETRY_COUNT_HEADER: MAX_RETRY_COUNT,
            ERROR_HEADER: f"x-retry-count is at its limit ({MAX_RETRY_COUNT}): ValueError: boom",
            QUEUE_HEADER: Q,
        },
        None,
        None,
        id="forged-retry-count-dead-lettered-at-the-cap",
    ),
]


@pytest.mark.parametrize(
    ("properties", "exc", "max_retries", "queue", "headers", "user_id", "reply"), _PLAN
)
def test_plan_table(
    properties: spec.Basic.Properties,
    exc: BaseException,
    max_retries: int,
    queue: str,
    headers: dict[str, Any],
    user_id: str | None,
    reply: bytes | None,
) -> None:
    before = (dict(properties.headers or {}), properties.user_id)
    config = RetryConfig(max_retries=max_retries, retry_delay_seconds=1)

    copy = plan(properties, exc, config, queue=Q, user=ME)

    assert copy.queue == queue
    assert copy.properties.headers == headers
    assert copy.properties.user_id == user_id
    assert copy.properties.message_id == properties.message_id  # everything else is kept
    assert copy.properties.reply_to == properties.reply_to
    assert (copy.reply.body if copy.reply else None) == reply
    if copy.reply is not None:
        assert (copy.reply.routing_key, copy.reply.correlation_id) == (
            "amq.rabbitmq.reply-to.abc",
            "c1",
        )
    assert (dict(properties.headers or {}), properties.user_id) == before  # original untouched


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("short", 10, "short", id="fits"),
        pytest.param("x" * 10, 10, "x" * 10, id="exactly"),
        pytest.param("x" * 100, 40, "x" * 16 + "... (84 more bytes cut)", id="cut"),
        pytest.param("é" * 30, 40, "é" * 8 + "... (44 more bytes cut)", id="never-half-a-char"),
    ],
)
def test_bounded(text: str, limit: int, expected: str) -> None:
    assert bounded(text, limit) == expected
    assert len(bounded(text, limit).encode()) <= limit


def test_describe_bounds_the_reason_and_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert describe(Broken()) == "Broken: <str() of the exception failed: RuntimeError>"
    assert len(describe(ValueError("x" * 100_000)).encode()) >= MAX_REASON_BYTES - 2
    assert len(describe(ValueError("x" * 100_000)).encode()) <= MAX_REASON_BYTES
    assert len(describe(InvalidMessage("y" * 100_000)).encode()) <= MAX_REASON_BYTES


def test_last_resort_keeps_only_what_can_always_be_sent() -> None:
    properties = _props(
        headers={"odd": b"\xff"}, correlation_id="c\x00", user_id="alice", reply_to="r"
    )
    copy = last_resort(properties, "ValueError: boom; dropped", 4, queue=Q)
    assert copy.queue == "orders.dlq"
    assert copy.decision == DeadLetter("ValueError: boom; dropped", 4)
    assert copy.properties.headers == {
        ERROR_HEADER: "ValueError: boom; dropped",
        RETRY_COUNT_HEADER: 4,
        QUEUE_HEADER: Q,
    }
    assert copy.properties.message_id == "m1"
    assert copy.properties.correlation_id is None  # not printable: dropped
    assert copy.properties.user_id is None
    assert copy.properties.reply_to is None
