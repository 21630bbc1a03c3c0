"""The pure failure decision: retry or dead-letter, and the headers a copy carries."""

from __future__ import annotations

from typing import Any

import pytest

from eventrabbit.common import RetryConfig
from eventrabbit.errors import InvalidMessage
from eventrabbit.failures import (
    BROKER_HEADERS,
    ERROR_HEADER,
    QUEUE_HEADER,
    RETRY_COUNT_HEADER,
    DeadLetter,
    Retry,
    copy_headers,
    decide,
    describe,
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
