"""The event wire format: decode every good and bad body, encode every JSON result type."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventrabbit import envelope
from eventrabbit.errors import EventRabbitError, InvalidMessage


@pytest.mark.parametrize(
    ("body", "action", "data"),
    [
        pytest.param(
            b'{"action": "order.created", "data": {}}', "order.created", {}, id="empty-data"
        ),
        pytest.param(
            b'{"action": "a", "data": {"id": 1, "tags": ["x", "y"], "nested": {"ok": true}}}',
            "a",
            {"id": 1, "tags": ["x", "y"], "nested": {"ok": True}},
            id="nested-data",
        ),
        pytest.param(
            '{"action": "caf\u00e9", "data": {"name": "\u00fc\u00df"}}'.encode(),
            "caf\u00e9",
            {"name": "\u00fc\u00df"},
            id="non-ascii-utf8",
        ),
        pytest.param(b'{"data": {"k": null}, "action": ""}', "", {"k": None}, id="key-order-free"),
        pytest.param(
            b'{"action": "a", "data": {"x": 1}, "meta": {"trace": "t"}}',
            "a",
            {"x": 1},
            id="extra-top-level-keys-ignored",
        ),
        pytest.param(b'  {"action":"a","data":{}}\n', "a", {}, id="surrounding-whitespace"),
    ],
)
def test_decode_good_body(body: bytes, action: str, data: dict[str, Any]) -> None:
    assert envelope.decode(body) == (action, data)


def test_decode_returns_a_plain_str_and_dict() -> None:
    action, data = envelope.decode(b'{"action": "a", "data": {"x": [1, 2]}}')
    assert type(action) is str
    assert type(data) is dict
    assert data["x"] == [1, 2]


_BAD_BODIES = [
    # not JSON at all
    pytest.param(b"not json", "not valid JSON", id="not-json"),
    pytest.param(b'{"action": "a", "data": {}', "not valid JSON", id="truncated-json"),
    pytest.param(b"{'action': 'a', 'data': {}}", "not valid JSON", id="single-quotes"),
    pytest.param(b'{"action": "\xff"}', "not valid JSON", id="invalid-utf8"),
    pytest.param(b"\xff\xfe\x00\x00", "not valid JSON", id="binary-garbage"),
    pytest.param(b"", "not valid JSON", id="empty-body"),
    pytest.param(b"   ", "not valid JSON", id="whitespace-only"),
    # JSON, but not an object
    pytest.param(b"[]", "body is a JSON array, not an object", id="array-empty"),
    pytest.param(
        b'[{"action": "a", "data": {}}]', "body is a JSON array, not an object", id="array-of-event"
    ),
    pytest.param(b"42", "body is a JSON number, not an object", id="number-int"),
    pytest.param(b"-1.5e3", "body is a JSON number, not an object", id="number-float"),
    pytest.param(b'"order.created"', "body is a JSON string, not an object", id="string"),
    pytest.param(b"null", "body is a JSON null, not an object", id="null"),
    pytest.param(b"true", "body is a JSON boolean, not an object", id="true"),
    pytest.param(b"false", "body is a JSON boolean, not an object", id="false"),
    # an object without a usable action
    pytest.param(b"{}", 'body has no "action"', id="empty-object"),
    pytest.param(b'{"data": {}}', 'body has no "action"', id="missing-action"),
    pytest.param(b'{"Action": "a", "data": {}}', 'body has no "action"', id="action-wrong-case"),
    pytest.param(
        b'{"action": 1, "data": {}}', '"action" is a JSON number, not a string', id="action-number"
    ),
    pytest.param(
        b'{"action": null, "data": {}}', '"action" is a JSON null, not a string', id="action-null"
    ),
    pytest.param(
        b'{"action": ["a"], "data": {}}', '"action" is a JSON array, not a string', id="action-list"
    ),
    pytest.param(
        b'{"action": {"name": "a"}, "data": {}}',
        '"action" is a JSON object, not a string',
        id="action-object",
    ),
    pytest.param(
        b'{"action": true, "data": {}}',
        '"action" is a JSON boolean, not a string',
        id="action-bool",
    ),
    # an object without a usable data
    pytest.param(b'{"action": "a"}', 'body has no "data"', id="missing-data"),
    pytest.param(
        b'{"action": "a", "data": [1, 2]}', '"data" is a JSON array, not an object', id="data-list"
    ),
    pytest.param(
        b'{"action": "a", "data": "x"}', '"data" is a JSON string, not an object', id="data-string"
    ),
    pytest.param(
        b'{"action": "a", "data": 3}', '"data" is a JSON number, not an object', id="data-number"
    ),
    pytest.param(
        b'{"action": "a", "data": null}', '"data" is a JSON null, not an object', id="data-null"
    ),
    pytest.param(
        b'{"action": "a", "data": false}', '"data" is a JSON boolean, not an object', id="data-bool"
    ),
]


@pytest.mark.parametrize(("body", "reason"), _BAD_BODIES)
def test_decode_bad_body_raises_invalid_message(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        envelope.decode(body)
    exc = info.value
    assert isinstance(exc, EventRabbitError)
    assert reason in exc.reason
    assert str(exc) == exc.reason


def test_decode_action_is_checked_before_data() -> None:
    # Both are wrong: the reason names the first problem, the action.
    with pytest.raises(InvalidMessage, match='"action" is a JSON number'):
        envelope.decode(b'{"action": 1, "data": 2}')


def test_decode_invalid_message_does_not_chain_the_orjson_error() -> None:
    with pytest.raises(InvalidMessage) as info:
        envelope.decode(b"{")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


_JSON_VALUES = [
    pytest.param({"id": 7, "items": [{"sku": "a", "qty": 2}]}, id="dict"),
    pytest.param({}, id="empty-dict"),
    pytest.param([1, "two", 3.5, None, True, {"k": "v"}], id="list"),
    pytest.param([], id="empty-list"),
    pytest.param("done", id="str"),
    pytest.param("", id="empty-str"),
    pytest.param("caf\u00e9 \u2603", id="str-non-ascii"),
    pytest.param(42, id="int"),
    pytest.param(0, id="zero"),
    pytest.param(-(2**63), id="int64-min"),
    pytest.param(1.25, id="float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("value", _JSON_VALUES)
def test_encode_round_trips_every_json_type(value: Any) -> None:
    body = envelope.encode("result.ready", value)
    assert isinstance(body, bytes)
    decoded = orjson.loads(body)
    assert decoded == {"action": "result.ready", "data": value}
    # bool must not come back as int, nor int as float
    assert type(decoded["data"]) is type(value)


def test_encode_then_decode_round_trip() -> None:
    data = {"id": 1, "name": "caf\u00e9", "tags": ["a"], "nested": {"x": None}}
    assert envelope.decode(envelope.encode("order.created", data)) == ("order.created", data)


def test_encode_is_utf8_json() -> None:
    body = envelope.encode("a", {"name": "\u00fc"})
    assert body.decode("utf-8") == '{"action":"a","data":{"name":"\u00fc"}}'


class _NotSerialisable:
    pass


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_NotSerialisable(), id="object"),
        pytest.param({1, 2}, id="set"),
        pytest.param({"nested": object()}, id="nested-object"),
        pytest.param(2**64, id="int-beyond-64-bit"),
        pytest.param(b"bytes", id="bytes"),
    ],
)
def test_encode_non_serialisable_raises_type_error_naming_the_action(value: Any) -> None:
    with pytest.raises(TypeError) as info:
        envelope.encode("report.generated", value)
    assert "'report.generated'" in str(info.value)
    assert "not JSON-serialisable" in str(info.value)
