"""``eventrabbit publish``: what reaches a queue is what a producer publishes, plus the
``--header`` values; stdin's lines arrive all and in order; and each failure has its exit code.

Every command runs as a subprocess against the real broker; a raw aiormq consumer (the
``amqp_channel`` fixture) receives what it published.
"""

from __future__ import annotations

import re

import aiormq.abc
import orjson
import pytest
from yarl import URL

from eventrabbit import envelope
from tests.cli.conftest import CLI
from tests.conftest import Names, Services
from tests.helpers import BROKER_URL, collect, queue_depth

pytestmark = pytest.mark.real_broker

#: Nothing listens on port 1 of the loopback interface: connecting is refused at once.
UNREACHABLE_URL = "amqp://guest:pw-unreachable@127.0.0.1:1/"
#: The real broker, with a password it refuses.
WRONG_PASSWORD_URL = str(URL(BROKER_URL).with_password("pw-refused"))
#: The properties a message carries, but its headers and its per-message id and time.
PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_type",
    "user_id",
    "app_id",
    "cluster_id",
)


async def _bound_queue(channel: aiormq.abc.AbstractChannel, names: Names) -> tuple[str, str]:
    exchange, queue = names.exchange(), names.queue()
    await channel.exchange_declare(exchange, exchange_type="fanout")
    await channel.queue_declare(queue)
    await channel.queue_bind(queue, exchange)
    return exchange, queue


async def test_publish_sends_what_a_producer_does_plus_headers(
    cli: type[CLI],
    names: Names,
    services: Services,
    amqp_channel: aiormq.abc.AbstractChannel,
) -> None:
    exchange, queue = await _bound_queue(amqp_channel, names)
    data = {"id": 7, "items": ["a", "b"], "note": "é"}

    ran = await cli.run(
        "publish",
        exchange,
        "order.created",
        orjson.dumps(data).decode(),
        "--header",
        "tenant=acme",
        "--header",
        "trace=a=b",
        "--json",
    )
    assert ran.code == 0, ran.stderr
    summary = orjson.loads(ran.stdout)
    assert summary["published"] == 1
    assert summary["unroutable"] == 0
    events, _ = services.build()
    await events.publish(exchange, "order.created", data)

    from_cli, from_library = await collect(amqp_channel, queue, 2)
    assert from_cli.body == from_library.body == envelope.encode("order.created", data)
    ours, theirs = from_cli.header.properties, from_library.header.properties
    assert ours.message_id == summary["message_id"]
    assert re.fullmatch("[0-9a-f]{32}", ours.message_id or "")
    assert ours.timestamp is not None
    assert ours.headers == {"tenant": "acme", "trace": "a=b"}
    assert theirs.headers is None
    assert {p: getattr(ours, p) for p in PROPERTIES} == {p: getattr(theirs, p) for p in PROPERTIES}


async def test_stdin_lines_are_all_confirmed_and_arrive_in_order(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    queue = names.queue()
    await amqp_channel.queue_declare(queue)
    lines = b"".join(orjson.dumps({"n": n}) + b"\n" for n in range(300))

    ran = await cli.run("publish", "", "count", "-", "--key", queue, "--progress", "0", stdin=lines)

    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith(
        f"published 300 events to the default exchange with routing key {queue!r}"
    )
    assert "waiting for their confirm" in ran.stderr  # the progress lines
    messages = await collect(amqp_channel, queue, 300)
    assert [envelope.decode(m.body) for m in messages] == [("count", {"n": n}) for n in range(300)]


async def test_a_bad_line_stops_after_publishing_the_lines_before_it(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    queue = names.queue()
    await amqp_channel.queue_declare(queue)
    lines = b'{"n": 0}\n{"n": 1}\n\n{"n": oops}\n{"n": 3}\n'

    ran = await cli.run("publish", "", "count", "-", "--key", queue, "--json", stdin=lines)

    assert ran.code == 2
    assert "line 4 is not valid JSON" in ran.stderr  # blank lines count, and are skipped
    assert orjson.loads(ran.stdout)["published"] == 2
    messages = await collect(amqp_channel, queue, 2)
    assert [envelope.decode(m.body)[1] for m in messages] == [{"n": 0}, {"n": 1}]
    assert await queue_depth(amqp_channel, queue) == 0  # the command confirmed all it sent

    ran = await cli.run("publish", "", "count", "[1, 2]", "--key", queue)
    assert ran.code == 2
    assert "DATA must be a JSON object" in ran.stderr


async def test_unroutable_events_fail_only_with_mandatory(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    exchange = names.exchange()
    await amqp_channel.exchange_declare(exchange, exchange_type="fanout")  # no queue bound

    ran = await cli.run("publish", exchange, "lost", "-", "--mandatory", stdin=b"{}\n{}\n{}\n")
    assert ran.code == 1
    assert "3 of 3 reached no queue (--mandatory)" in ran.stderr

    ran = await cli.run("publish", exchange, "lost")
    assert ran.code == 0, ran.stderr
    assert "1 reached no queue" in ran.stdout


async def test_a_missing_exchange_exits_1_having_published_nothing(
    cli: type[CLI], names: Names
) -> None:
    ran = await cli.run("publish", names.exchange(), "lost", "-", "--json", stdin=b"{}\n" * 50)

    assert ran.code == 1
    assert "the exchange does not exist" in ran.stderr
    assert orjson.loads(ran.stdout)["published"] == 0
