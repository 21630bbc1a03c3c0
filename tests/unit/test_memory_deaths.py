"""The in-memory broker's pure rules for dead-lettering, TTL and length limits, as tables.

Each row is what RabbitMQ 3.10 was seen to do (``tests/integration/test_diff_deaths.py`` holds
the broker to it end to end).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp import commands as spec

from eventrabbit.testing.arguments import invalid_argument
from eventrabbit.testing.deaths import deaths_after, died_in, record_death
from eventrabbit.testing.limits import Limits
from eventrabbit.testing.messages import StoredMessage, expiration_error, ttl_of
from eventrabbit.testing.ready import ReadyMessages


def death(queue: str, reason: str, count: int = 1) -> dict[str, Any]:
    return {"queue": queue, "reason": reason, "count": count}


NEW = death("q", "rejected")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, [NEW]),
        ("not a list", [NEW]),  # replaced
        ([], [NEW]),
        (["not a table", 7], [NEW]),  # non-tables left out
        ([death("q", "rejected", 5)], [death("q", "rejected", 6)]),
        ([death("q", "expired", 5)], [NEW, death("q", "expired", 5)]),
        ([{"queue": "q", "reason": "rejected"}], [death("q", "rejected", 1)]),  # no count
        ([{"queue": "q", "reason": "rejected", "count": "x"}], [death("q", "rejected", 1)]),
        # more than one table: grouped by (queue, reason), the first kept, in reverse order
        (
            [death("a", "expired", 5), death("o", "expired", 3), death("a", "expired", 7)],
            [NEW, death("o", "expired", 3), death("a", "expired", 5)],
        ),
        (
            [death("q", "rejected", 2), death("o", "expired", 3), death("q", "rejected", 4)],
            [death("q", "rejected", 3), death("o", "expired", 3)],
        ),
    ],
)
def test_deaths_after(before: object, after: list[dict[str, Any]]) -> None:
    assert deaths_after(before, NEW) == after


def _message() -> StoredMessage:
    return StoredMessage(b"", b"", "x", "k", 0)


@pytest.mark.parametrize(
    ("headers", "first_death"),
    [
        ({}, {"reason": "rejected", "queue": "q", "exchange": "x"}),
        ({"x-first-death-queue": "forged"}, {"reason": "rejected", "queue": "q", "exchange": "x"}),
        ({"x-death": []}, None),
        ({"x-death": "broken"}, None),
        ({"x-death": [death("o", "expired")]}, None),
        ({"x-death": [], "x-first-death-queue": "kept"}, {"queue": "kept"}),
    ],
)
def test_first_death_only_without_x_death(
    headers: dict[str, Any], first_death: dict[str, str] | None
) -> None:
    properties = spec.Basic.Properties(headers=dict(headers), expiration="100")
    result = record_death(properties, _message(), "q", "rejected")
    found = {
        key.removeprefix("x-first-death-"): value
        for key, value in (result.headers or {}).items()
        if key.startswith("x-first-death-")
    }
    assert found == (first_death or {})
    assert not any(key.startswith("x-last-death-") for key in result.headers or {})  # 3.13+
    assert result.expiration is None
    assert (result.headers or {})["x-death"][0]["original-expiration"] == "100"


@pytest.mark.parametrize(
    ("deaths", "queue", "cycle"),
    [
        (None, "q", False),
        ("broken", "q", False),
        ([death("q", "expired")], "q", True),
        ([death("o", "expired"), death("q", "maxlen")], "q", True),
        ([death("o", "rejected"), death("q", "expired")], "q", False),
        ([death("q", "rejected")], "q", False),
        (["junk", death("q", "expired")], "q", False),
        ([death("o", "expired")], "q", False),
    ],
)
def test_died_in(deaths: object, queue: str, cycle: bool) -> None:
    headers = None if deaths is None else {"x-death": deaths}
    assert died_in(spec.Basic.Properties(headers=headers), queue) is cycle


@pytest.mark.parametrize(
    ("expiration", "error"),
    [
        ("0", None),
        ("100", None),
        ("+100", None),
        ("-0", None),
        ("0100", None),
        ("315360000000", None),
        ("315360000001", "{value_too_large,315360000001}"),
        ("abc", "no_integer"),
        (" 100", "no_integer"),
        ("+-1", "no_integer"),
        ("\u0661\u0660\u0660", "no_integer"),  # Arabic-Indic digits
        ("-1", "{value_negative,-1}"),
        ("1.5", '{leftover_string,".5"}'),
        ("100 ", '{leftover_string," "}'),
        ("1_0", '{leftover_string,"_0"}'),
        ("1e3", '{leftover_string,"e3"}'),
    ],
)
def test_expiration_error(expiration: str, error: str | None) -> None:
    assert expiration_error(expiration) == error


def test_ttl_of_refuses_an_invalid_expiration() -> None:
    assert ttl_of(spec.Basic.Properties(expiration="250")) == 0.25
    assert ttl_of(spec.Basic.Properties()) is None
    with pytest.raises(ChannelPreconditionFailed, match="invalid expiration 'abc': no_integer"):
        ttl_of(spec.Basic.Properties(expiration="abc"))


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, None),
        ({"x-max-length": 0, "x-overflow": "reject-publish-dlx", "x-message-ttl": 0}, None),
        ({"x-message-ttl": -1}, "'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"),
        ({"x-message-ttl": 1.5}, '"expected integer, got float"'),
        ({"x-message-ttl": 315360000001}, "{value_too_large,315360000001}"),
        ({"x-max-length": "5"}, '"expected integer, got longstr"'),
        ({"x-max-length": True}, '"expected integer, got bool"'),
        ({"x-max-length-bytes": -1}, "{value_negative,-1}"),
        ({"x-overflow": "bogus"}, "'x-overflow' for queue 'q' in vhost '/': invalid_overflow"),
        ({"x-overflow": 1}, "{unacceptable_type,long}"),
        ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
    ],
)
def test_invalid_argument(arguments: dict[str, Any], error: str | None) -> None:
    found = invalid_argument("q", arguments)
    if error is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith("invalid arg '")
        assert found.endswith(error)


@pytest.mark.parametrize(
    ("limits", "length", "size", "body", "refuses", "drops_head"),
    [
        (Limits(), 1000, 10**9, 10, False, False),
        (Limits(max_length=2), 2, 0, 1, False, False),  # drop-head takes it, then drops
        (Limits(max_length=2), 3, 0, 1, False, True),
        (Limits(max_length=2, overflow="reject-publish"), 2, 0, 1, True, False),
        (Limits(max_length=2, overflow="reject-publish"), 1, 0, 1, False, False),
        (Limits(max_length=0, overflow="reject-publish-dlx"), 0, 0, 0, True, False),
        (Limits(max_bytes=10, overflow="reject-publish"), 0, 0, 11, True, False),
        (Limits(max_bytes=10, overflow="reject-publish"), 2, 8, 2, False, False),
        (Limits(max_bytes=10, overflow="reject-publish"), 2, 8, 3, True, False),
        (Limits(max_bytes=10), 3, 11, 0, False, True),
        (Limits(max_bytes=10), 3, 10, 0, False, False),
    ],
)
def test_limits(
    limits: Limits, length: int, size: int, body: int, refuses: bool, drops_head: bool
) -> None:
    assert limits.refuses(length, size, body) is refuses
    assert limits.drops_head(length, size) is drops_head


def test_limits_of_arguments() -> None:
    assert Limits.of({}) == Limits()
    arguments = {"x-max-length": 3, "x-max-length-bytes": 9, "x-overflow": "reject-publish"}
    assert Limits.of(arguments) == Limits(3, 9, "reject-publish")


def _ready(arguments: dict[str, Any], *bodies: bytes) -> ReadyMessages:
    ready = ReadyMessages(arguments, on_due=lambda: None)
    for seq, body in enumerate(bodies):
        ready.add(StoredMessage(body, b"", "", "q", seq))
    return ready


def test_only_the_head_expires() -> None:
    now = time.monotonic()
    ready = ReadyMessages({}, on_due=lambda: None)
    deadlines = {b"long": now + 3600, b"short": now - 1, b"none": None, b"past": now - 1}
    for seq, (body, deadline) in enumerate(deadlines.items()):
        ready.add(StoredMessage(body, b"", "", "q", seq, deadline=deadline))
    assert ready.expired() == []  # "short" is overdue, but behind "long"
    assert ready.pop() is not None
    assert [m.body for m in ready.expired()] == [b"short"]
    assert [m.body for m in ready.messages] == [b"none", b"past"]  # no TTL holds "past" back


def test_drop_head_takes_from_the_head_until_within_the_limits() -> None:
    ready = _ready({"x-max-length-bytes": 10}, b"aaaa", b"bbbb", b"cccc")
    assert [m.body for m in ready.overflowing()] == [b"aaaa"]
    ready.add(StoredMessage(b"e" * 11, b"", "", "q", 9))
    assert [m.body for m in ready.overflowing()] == [b"bbbb", b"cccc", b"e" * 11]
