"""eventrabbit.publish_frames.encode against aiormq's own marshalling of a Basic.Publish, and
the aiormq internals the direct publish relies on. No broker (the wire tests are in
tests/integration/test_publish_frames.py)."""

from __future__ import annotations

import asyncio
import inspect

import aiormq
from aiormq.abc import ChannelFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from eventrabbit.confirm import event_properties
from eventrabbit.publish_frames import encode

names = st.text(max_size=40)
#: What pamqp takes as an exchange name (others are left to aiormq, which refuses them).
exchanges = st.from_regex(r"[a-zA-Z0-9\-_.:@#,/+ ]{0,40}", fullmatch=True)


def aiormq_bytes(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    properties: spec.Basic.Properties,
    body: bytes,
    max_content_size: int,
) -> bytes:
    """What aiormq's basic_publish queues for the writer, built the way it builds it."""
    frames: list[object] = [
        spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
        ContentHeader(properties=properties, body_size=len(body)),
    ]
    if body:
        if len(body) < max_content_size:
            frames.append(ContentBody(body))
        else:
            frames += [
                ContentBody(body[i : i + max_content_size])
                for i in range(0, len(body), max_content_size)
            ]
    return ChannelFrame.marshall(channel, frames).payload  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    channel=st.integers(1, 2047),
    exchange=exchanges,
    routing_key=names,
    mandatory=st.booleans(),
    body=st.binary(max_size=300),
    max_content_size=st.integers(1, 200),
    headers=st.none() | st.dictionaries(st.text(max_size=8), st.integers(0, 9), max_size=3),
    correlation_id=st.none() | names,
)
def test_the_frames_are_aiormqs(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    body: bytes,
    max_content_size: int,
    headers: dict[str, int] | None,
    correlation_id: str | None,
) -> None:
    properties = event_properties(headers=headers, correlation_id=correlation_id)
    ours = encode(channel, exchange, routing_key, mandatory, properties, body, max_content_size)
    theirs = aiormq_bytes(
        channel, exchange, routing_key, mandatory, properties, body, max_content_size
    )
    assert ours == theirs


def test_names_pamqp_refuses_are_left_to_aiormq() -> None:
    properties = event_properties()
    assert encode(1, "", "k" * 256, False, properties, b"{}", 1000) is None
    assert encode(1, "é" * 128, "k", False, properties, b"{}", 1000) is None  # 256 bytes
    assert encode(1, "x" * 128, "k", False, properties, b"{}", 1000) is None
    assert encode(1, "a|b", "k", False, properties, b"{}", 1000) is None
    assert encode(1, "x" * 127, "é" * 127, True, properties, b"{}", 1000) is not None


def test_aiormq_still_has_the_internals_the_direct_publish_uses() -> None:
    # The channel's lock is private; a rename would silently send every publish the slow way.
    init = inspect.getsource(aiormq.Channel.__init__)
    assert "self.__lock = asyncio.Lock()" in init
    publish = inspect.getsource(aiormq.Channel.basic_publish)
    for used in (
        "async with self.lock:",
        "self.delivery_tag += 1",
        "self.confirmations[delivery_tag] = confirmation",
        "self.message_id_delivery_tag[message_id] = delivery_tag",
        "confirmation = self.create_future()",
        "self.write_queue.put(",
    ):
        assert used in publish, used
    lock = inspect.getsource(aiormq.Channel.lock.fget)  # type: ignore[attr-defined]
    assert "async with self.__lock:" in lock
    # The writer task is started from a method the connection's subclass wraps.
    connect = inspect.getsource(aiormq.Connection.connect)
    assert "self.__writer(writer)" in connect
    assert asyncio.iscoroutinefunction(aiormq.Connection._Connection__writer)  # type: ignore[attr-defined]
