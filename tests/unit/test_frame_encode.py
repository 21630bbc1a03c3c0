"""eventrabbit.frame_encode.Properties against pamqp's own encoder: the same properties give
the same bytes, and what pamqp refuses is refused the same way. No broker."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.header import ContentHeader

from eventrabbit.confirm import event_properties, reply_properties
from eventrabbit.frame_encode import Properties

short = st.text(max_size=60)
text_or_empty = st.none() | st.just("") | short
stamps = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
)
any_stamp = st.none() | stamps | stamps.map(lambda m: m.replace(tzinfo=datetime.UTC))
table = st.none() | st.dictionaries(
    st.text(max_size=10), st.none() | st.integers(-(2**31), 2**31 - 1) | short | st.booleans()
)


def both(values: dict[str, Any]) -> bytes:
    ours, theirs = Properties(**values), spec.Basic.Properties(**values)
    assert ours == theirs
    encoded = ours.marshal()
    assert encoded == theirs.marshal()
    header = ContentHeader(body_size=3, properties=ours)
    assert header.marshal() == ContentHeader(body_size=3, properties=theirs).marshal()
    return encoded


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "content_type": text_or_empty,
            "headers": table,
            "delivery_mode": st.none() | st.sampled_from([1, 2]),
            "correlation_id": text_or_empty,
            "reply_to": text_or_empty,
            "expiration": text_or_empty,
            "message_id": text_or_empty,
            "timestamp": any_stamp,
        },
        optional={
            "content_encoding": text_or_empty,
            "priority": st.integers(0, 9),
            "message_type": text_or_empty,
            "user_id": text_or_empty,
            "app_id": text_or_empty,
        },
    )
)
def test_properties_encode_as_pamqp_does(values: dict[str, Any]) -> None:
    both(values)


def test_what_eventrabbit_publishes_encodes_as_pamqp_does() -> None:
    for made in (
        event_properties(),
        event_properties(headers={"x-retry-count": 2}, correlation_id="c", reply_to="r"),
        event_properties(delivery_mode=1, expiration="5000"),
        reply_properties("c"),
        reply_properties(None),
    ):
        assert isinstance(made, Properties)
        values = {name: getattr(made, name) for name in made.__slots__}
        assert both(values) == made.marshal()


@pytest.mark.parametrize(
    "values",
    [
        {"timestamp": time.gmtime(1_700_000_000)},  # a struct_time: pamqp's
        {"timestamp": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.max)},
        {"message_id": "x" * 300},  # too long: pamqp raises
        {"message_id": 5},  # not a str: pamqp raises
        {"delivery_mode": 300},  # not an octet: pamqp raises
        {"headers": {"k": object()}},  # not encodable: pamqp raises
    ],
    ids=["struct_time", "other-zone", "long", "int-id", "octet", "table"],
)
def test_odd_values_are_pamqps_to_encode_or_refuse(values: dict[str, Any]) -> None:
    ours = Properties()
    theirs = spec.Basic.Properties()
    for name, value in values.items():  # set after construction: validate() is not the point
        setattr(ours, name, value)
        setattr(theirs, name, value)
    try:
        expected = theirs.marshal()
    except Exception as exc:  # noqa: BLE001 — whatever pamqp raises, ours raises the same
        with pytest.raises(type(exc)):
            ours.marshal()
    else:
        assert ours.marshal() == expected


def test_the_common_properties_never_reach_pamqps_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the module: if these fell back to pamqp, nothing above would fail.
    made = event_properties(headers={"a": 1}, correlation_id="c", reply_to="r", expiration="9")
    expected = spec.Basic.Properties.marshal(made)

    def walk(self: object) -> bytes:
        raise AssertionError("pamqp's encoder was used")

    monkeypatch.setattr(spec.Basic.Properties, "marshal", walk)
    assert made.marshal() == expected
