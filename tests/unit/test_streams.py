"""The pure decisions of capture and replay (eventrabbit.streams, replay_context), as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from eventrabbit import ConfigurationError, ExchangeType, StreamChannel
from eventrabbit.replay_context import Replaying, enter, held_back, leave, replay_offset
from eventrabbit.streams import (
    check_stop,
    max_age_argument,
    offset_argument,
    offset_of,
    past,
    stream_arguments,
    wanted,
)

URL = "amqp://guest:secret@localhost/"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NAIVE = datetime(2026, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    ("start", "argument"),
    [
        ("first", "first"),
        ("last", "last"),
        ("next", "next"),
        (0, 0),
        (12345, 12345),
        (NOW, NOW),
        (timedelta(hours=1), NOW - timedelta(hours=1)),
        (timedelta(0), NOW),
    ],
)
def test_where_a_replay_starts(start: Any, argument: Any) -> None:
    assert offset_argument(start, NOW) == argument


def test_an_aware_datetime_in_another_zone_is_the_same_instant() -> None:
    east = NOW.astimezone(timezone(timedelta(hours=5)))
    assert offset_argument(east, NOW) == NOW


@pytest.mark.parametrize(
    ("start", "says"),
    [
        (NAIVE, "naive datetime"),
        (-1, "within 0.."),
        (True, "must be 'first'"),
        ("earliest", "must be 'first'"),
        (timedelta(seconds=-1), "must not be negative"),
        (1.5, "must be 'first'"),
        (None, "must be 'first'"),
    ],
)
def test_starts_that_cannot_work_are_refused(start: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        offset_argument(start, NOW)


@pytest.mark.parametrize("stop", ["idle", None, 0, 99, NOW])
def test_stops_a_replay_understands(stop: Any) -> None:
    assert check_stop(stop) == stop


@pytest.mark.parametrize(
    ("stop", "says"),
    [(NAIVE, "naive"), (-5, "within 0.."), ("never", "must be 'idle'"), (False, "'idle'")],
)
def test_stops_that_cannot_work_are_refused(stop: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        check_stop(stop)


@pytest.mark.parametrize(
    ("offset", "first", "handled"),
    [(5, None, True), (0, 0, True), (4, 5, False), (5, 5, True), (6, 5, True)],
)
def test_deliveries_before_the_start_are_skipped(offset: int, first: int | None, handled: bool):
    assert wanted(offset, first) is handled


@pytest.mark.parametrize(
    ("offset", "timestamp", "stop", "beyond"),
    [
        (10, None, "idle", False),
        (10, None, None, False),
        (10, None, 10, False),
        (11, None, 10, True),
        (10, NOW, NOW, False),
        (10, NOW + timedelta(seconds=1), NOW, True),
        (10, (NOW + timedelta(seconds=1)).replace(tzinfo=None), NOW, True),  # pamqp: naive UTC
        (10, None, NOW, False),  # no timestamp: only idleness ends it
    ],
)
def test_where_a_replay_stops(offset: int, timestamp: Any, stop: Any, beyond: bool) -> None:
    assert past(offset, timestamp, stop) is beyond


@pytest.mark.parametrize(
    ("headers", "offset"),
    [(None, None), ({}, None), ({"x-stream-offset": 7}, 7), ({"x-stream-offset": "7"}, None)],
)
def test_the_offset_of_a_delivery(headers: Any, offset: int | None) -> None:
    assert offset_of(headers) == offset


@pytest.mark.parametrize(
    ("value", "argument"),
    [("7D", "7D"), ("12h", "12h"), ("1Y", "1Y"), (timedelta(days=1), "86400s")],
)
def test_max_age(value: Any, argument: str) -> None:
    assert max_age_argument(value) == argument


@pytest.mark.parametrize("value", ["7d", "0D", "D", "7 D", "", timedelta(0), 3600])
def test_a_max_age_rabbitmq_would_refuse_is_refused_first(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_age"):
        max_age_argument(value)


@pytest.mark.parametrize(
    ("options", "arguments"),
    [
        ({}, {"x-queue-type": "stream"}),
        (
            {"max_age": "7D", "max_length_bytes": 10**9, "max_segment_size_bytes": 10**7},
            {
                "x-queue-type": "stream",
                "x-max-age": "7D",
                "x-max-length-bytes": 10**9,
                "x-stream-max-segment-size-bytes": 10**7,
            },
        ),
    ],
)
def test_the_streams_declare_arguments(options: dict[str, Any], arguments: dict[str, Any]):
    assert stream_arguments(StreamChannel(URL, "s", **options)) == arguments


@pytest.mark.parametrize(
    ("kind", "keys", "bound"),
    [
        (ExchangeType.TOPIC, None, ("#",)),
        ("fanout", None, ("",)),
        (ExchangeType.DIRECT, "a", ("a",)),
        (None, ("a", "b"), ("a", "b")),
    ],
)
def test_what_a_stream_is_bound_with(kind: Any, keys: Any, bound: tuple[str, ...]) -> None:
    assert StreamChannel(URL, "s", "ex", kind, keys).routing_keys() == bound


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"stream_name": "amq.s"}, "stream_name"),
        ({"stream_name": "s" * 250}, "stream_name"),
        ({"max_length_bytes": 0}, "max_length_bytes"),
        ({"prefetch_count": 0}, "prefetch_count"),
        ({"exchange_type": "fan"}, "exchange_type"),
        ({"max_age": "forever"}, "max_age"),
        ({"url": []}, "url"),
    ],
)
def test_a_stream_channel_that_cannot_work_is_refused(options: dict[str, Any], says: str):
    arguments: dict[str, Any] = {"url": URL, "stream_name": "s"} | options
    with pytest.raises(ConfigurationError, match=says):
        StreamChannel(**arguments)


def test_a_stream_channels_repr_hides_the_password() -> None:
    shown = repr(StreamChannel([URL, URL], "s"))
    assert "secret" not in shown
    assert "******" in shown


def test_publishes_are_held_back_and_counted_only_inside_a_replay() -> None:
    assert held_back() is False
    assert replay_offset() is None
    context = Replaying("s", offset=4)
    token = enter(context)
    try:
        assert replay_offset() == 4
        assert held_back() is True
        assert held_back() is True
    finally:
        leave(token)
    assert context.held_back == 2
    assert held_back() is False
    opted_in = Replaying("s", side_effects=True)
    token = enter(opted_in)
    try:
        assert held_back() is False
    finally:
        leave(token)
    assert opted_in.held_back == 0
