"""``eventrabbit dlq`` run as a subprocess against the real broker, checked on the wire with a
second client: what moved arrives byte for byte, what stays keeps its order, reading changes
nothing, an interrupted re-drive loses nothing and duplicates at most one message.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import subprocess
from typing import Any

import aiormq
import aiormq.abc
import orjson
import pytest
from aiormq.abc import DeliveredMessage

from eventrabbit import QueueConfig, RetryConfig
from eventrabbit.connection import open_connection
from eventrabbit.wire_transport import wire_of
from tests.cli.conftest import COMMAND_TIMEOUT, argv, command_env, run_command
from tests.conftest import Names, Services
from tests.helpers import (
    BROKER_URL,
    close_named_connections,
    collect,
    consumer_count,
    event,
    eventually,
    named,
    publish_raw,
    queue_depth,
)
from tests.integration.test_wire import Verbatim
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import every_type_table, shortstr

pytestmark = pytest.mark.real_broker  # the command is another process on the same broker

Channel = aiormq.abc.AbstractChannel
TIMEOUT = 10.0


def original(message_id: str) -> bytes:
    """A property list with a header of every AMQP field type (int, decimal, timestamp, byte
    array, nested table, ...), as another client may send it."""
    return (
        struct.pack(">H", 0x8000 | 0x2000 | 0x1000 | 0x0080 | 0x0040 | 0x0008)
        + shortstr(b"application/json")
        + long(every_type_table() + entry(b"tenant", "S", long(b"acme")))
        + b"\x02"
        + shortstr(message_id.encode())
        + struct.pack(">Q", 1_700_000_000)
        + shortstr(b"billing")
    )


async def take_raw(queue: str, n: int) -> list[tuple[bytes, bytes]]:
    """Take ``n`` messages of ``queue``: (property bytes as they arrived, body), in order."""
    connection = await open_connection(BROKER_URL)
    try:
        wire = wire_of(connection)
        assert wire is not None
        channel = await connection.channel()
        stash = wire.watch(channel.number)
        await channel.basic_qos(prefetch_count=n)
        got: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        await channel.basic_consume(queue, got.put)
        taken = []
        async with asyncio.timeout(TIMEOUT):
            for _ in range(n):
                message = await got.get()
                assert message.delivery_tag is not None
                kept = stash.pop(message.delivery_tag, None)
                raw = kept.properties if kept else message.header.properties.marshal()
                taken.append((raw, message.body))
                await channel.basic_ack(message.delivery_tag)
        return taken
    finally:
        await connection.close()


async def ids_in(channel: Channel, queue: str) -> list[str]:
    """The message ids of everything in ``queue``, in order, taking it."""
    messages = await collect(channel, queue, await queue_depth(channel, queue))
    return [str(m.header.properties.message_id) for m in messages]


async def dead_letters(
    channel: Channel, queue: str, letters: list[tuple[str, str]], queue_type: str = "classic"
) -> None:
    """Publish crafted dead letters (message id, action) into ``queue.dlq`` as eventrabbit
    writes them; an action ``-`` gets a body that is not JSON and no failure headers."""
    await channel.queue_declare(queue, durable=True)
    await channel.queue_declare(
        f"{queue}.dlq", durable=True, arguments={"x-queue-type": queue_type}
    )
    for message_id, action in letters:
        headers: dict[str, Any] = {"tenant": "acme"}
        body = b"\x00 not json"
        if action != "-":
            body = event(action, {"id": message_id})
            headers |= {
                "x-eventrabbit-error": f"{action.title()}Error: {message_id} failed",
                "x-eventrabbit-queue": queue,
                "x-retry-count": 2,
            }
        await publish_raw(channel, body, f"{queue}.dlq", message_id=message_id, headers=headers)


# --- redrive ------------------------------------------------------------------------------


async def test_redrive_moves_one_action_back_byte_for_byte_and_the_rest_stays_in_order(
    services: Services, amqp_channel: Channel
) -> None:
    # Real dead letters: PAY and SHIP raise, NOPE has no handler (bad input).
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=0),
        queue_config=QueueConfig(prefetch_count=1),  # dead-lettered in the order published
    )
    target = services.target("dlq")
    queue = target.queue_name

    @events.consumer("PAY")
    async def pay(n: int) -> None:
        raise ValueError(f"payment {n} declined")

    @events.consumer("SHIP")
    async def ship(n: int) -> None:
        raise KeyError(n)

    await services.consume(handle, target)
    sent = []
    for n in range(3):
        for action in ("PAY", "SHIP", "NOPE"):
            message_id = f"{action}-{n}"
            raw = original(message_id)
            sent.append((message_id, raw, event(action, {"n": n})))
            await amqp_channel.basic_publish(
                sent[-1][2], routing_key=queue, properties=Verbatim(raw)
            )
    dlq = f"{queue}.dlq"
    await eventually(lambda: _depth_is(amqp_channel, dlq, 9), what="9 dead letters")
    await handle.close()

    ran = await run_command("dlq", "redrive", queue, "--action", "PAY")

    assert ran.code == 0, ran.stderr
    assert f"moved 3 of 9 dead letters from {dlq}; 6 left" in ran.stdout
    assert "by action: PAY 3" in ran.stdout
    moved = await take_raw(queue, 3)
    expected = [(raw, body) for message_id, raw, body in sent if message_id.startswith("PAY")]
    assert moved == expected  # as first published: every byte, every header type, in order
    assert await queue_depth(amqp_channel, queue) == 0
    stayed = await collect(amqp_channel, dlq, 6)
    assert [m.header.properties.message_id for m in stayed] == [
        message_id for message_id, _, _ in sent if not message_id.startswith("PAY")
    ]
    errors = [(m.header.properties.headers or {})["x-eventrabbit-error"] for m in stayed[:2]]
    assert errors == ["KeyError: 0", "no handler for action 'NOPE'"]  # as they were


async def _depth_is(channel: Channel, queue: str, n: int) -> bool:
    return await queue_depth(channel, queue) == n


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_what_stays_keeps_its_order_when_the_walk_changes_consumers(
    amqp_channel: Channel, names: Names, queue_type: str
) -> None:
    queue = names.queue("dlq-order")
    letters = [(f"m{i:02}", "ABC"[i % 3]) for i in range(18)] + [("no-queue", "-")]
    await dead_letters(amqp_channel, queue, letters, queue_type)

    # Two read ahead: the walks hold back more than that and change consumers. A quorum queue
    # puts what it gets back behind the rest: a peek of three reads it whole.
    peek = await run_command("dlq", "peek", queue, "-n", "3", "--read-ahead", "2", "--json")
    ran = await run_command("dlq", "redrive", queue, "--action", "B", "--read-ahead", "2")

    assert peek.code == 0, peek.stderr
    assert [m["message_id"] for m in orjson.loads(peek.stdout)["messages"]] == [
        "m00",
        "m01",
        "m02",
    ]
    assert ran.code == 0, ran.stderr
    assert await ids_in(amqp_channel, queue) == [i for i, a in letters if a == "B"]
    assert await ids_in(amqp_channel, f"{queue}.dlq") == [i for i, a in letters if a != "B"]


async def test_a_quorum_queue_too_deep_to_give_back_in_order_is_not_read(
    amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("dlq-deep")
    letters = [(f"m{i:02}", "A") for i in range(17)]
    await dead_letters(amqp_channel, queue, letters, "quorum")

    ran = await run_command("dlq", "stats", queue, "--read-ahead", "1")

    assert ran.code == 2
    assert f"{queue}.dlq is a quorum queue of 17 messages" in ran.stderr
    assert "give --read-ahead 2 or more" in ran.stderr
    assert await ids_in(amqp_channel, f"{queue}.dlq") == [i for i, _ in letters]


async def test_redrive_dry_run_moves_nothing_and_skips_what_has_no_queue(
    amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("dlq-dry")
    letters = [("a1", "A"), ("x", "-"), ("b1", "B"), ("a2", "A")]
    await dead_letters(amqp_channel, queue, letters)

    dry = await run_command("dlq", "redrive", f"{queue}.dlq", "--dry-run", "--json")
    ran = await run_command("dlq", "redrive", queue, "--limit", "1")

    assert dry.code == 1, dry.stderr  # one selected letter cannot go back
    summary = orjson.loads(dry.stdout)
    assert summary["dry_run"] is True
    assert (summary["moved"], summary["left"], summary["looked_at"]) == (3, 1, 4)
    assert summary["by_action"] == {"A": 2, "B": 1}
    assert summary["skipped"] == {"no x-eventrabbit-queue header": 1}
    assert ran.code == 0, ran.stderr
    assert "moved 1 of 4 dead letters" in ran.stdout
    assert await ids_in(amqp_channel, queue) == ["a1"]
    assert await ids_in(amqp_channel, f"{queue}.dlq") == ["x", "b1", "a2"]


#: Dead letters of the interrupted re-drive: some 5 s at 80 a second, so that it is stopped
#: half-way (a deadline is no speed goal: a slower machine only stops it earlier).
TOTAL = 400


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT", "connection closed by the broker"])
async def test_an_interrupted_redrive_run_again_accounts_for_every_message(
    amqp_channel: Channel, names: Names, how: str
) -> None:
    queue = names.queue("dlq-kill")
    letters = [(f"m{i:03}", "A") for i in range(TOTAL)]
    await dead_letters(amqp_channel, queue, letters)
    url, connection_name = named(BROKER_URL, "dlq-redrive")

    process = await asyncio.create_subprocess_exec(
        *argv("dlq", "redrive", queue, "--rate", "80"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=command_env(url),
    )
    try:
        line = await _progress(process)  # "moved N, looked at M of TOTAL", N > 0
        if how == "SIGKILL":
            process.send_signal(signal.SIGKILL)
        elif how == "SIGINT":
            process.send_signal(signal.SIGINT)
        else:
            assert await close_named_connections(connection_name)
        async with asyncio.timeout(COMMAND_TIMEOUT):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == {"SIGKILL": -9, "SIGINT": 130}.get(how, 3), line
    dlq = f"{queue}.dlq"
    await eventually(lambda: _no_consumer(amqp_channel, dlq), what="the broker took back")
    peek = await run_command("dlq", "peek", queue, "-n", str(TOTAL), "--json")
    left = [m["message_id"] for m in orjson.loads(peek.stdout)["messages"]]
    assert 0 < len(left) < TOTAL, line
    # What stayed is the tail, in order; its first may be the one in flight, also moved.
    assert left == [message_id for message_id, _ in letters[-len(left) :]]

    again = await run_command("dlq", "redrive", queue)

    assert again.code == 0, again.stderr
    assert await queue_depth(amqp_channel, dlq) == 0
    moved = await ids_in(amqp_channel, queue)
    assert set(moved) == {message_id for message_id, _ in letters}  # none lost
    assert len(moved) - TOTAL <= 1, "more than the message in flight was duplicated"


async def _no_consumer(channel: Channel, queue: str) -> bool:
    return await consumer_count(channel, queue) == 0


async def _progress(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    async with asyncio.timeout(COMMAND_TIMEOUT):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "the command ended before it reported progress"
            if line.startswith("eventrabbit: moved ") and not line.startswith(
                "eventrabbit: moved 0,"
            ):
                return line


# --- stats and peek -----------------------------------------------------------------------

LETTERS = [("a1", "A"), ("b1", "B"), ("junk", "-"), ("a2", "A"), ("c1", "C"), ("a3", "A")]


async def test_stats_and_peek_describe_the_queue_and_leave_it_as_it_was(
    amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("dlq-read")
    await dead_letters(amqp_channel, queue, LETTERS)

    stats = await run_command("dlq", "stats", queue)
    stats_json = await run_command("dlq", "stats", queue, "--json")
    peek = await run_command("dlq", "peek", queue, "-n", "3")
    peek_json = await run_command("dlq", "peek", f"{queue}.dlq", "-n", "2", "--json")

    for ran in (stats, stats_json, peek, peek_json):
        assert ran.code == 0, ran.stderr
    assert stats.stdout.splitlines()[0] == f"{queue}.dlq: 6 dead letters"
    assert f"  {'A':<12}  3" in stats.stdout  # counts aligned on the widest, "(unreadable)"
    assert orjson.loads(stats_json.stdout) == {
        "queue": f"{queue}.dlq",
        "depth": 6,
        "read": 6,
        "by_action": {"A": 3, "B": 1, "(unreadable)": 1, "C": 1},
        "by_error": {"AError": 3, "BError": 1, "(none)": 1, "CError": 1},
    }
    assert peek.stdout.splitlines()[0] == f"{queue}.dlq: 6 dead letters, the first 3:"
    assert f"  1  message_id=a1  action=A  retries=2  queue={queue}" in peek.stdout
    assert "     error: AError: a1 failed" in peek.stdout
    assert "  3  message_id=junk  action=-  retries=-  queue=-" in peek.stdout
    assert "     body:  \\x00 not json (10 bytes)" in peek.stdout
    assert orjson.loads(peek_json.stdout)["messages"] == [
        {
            "position": 1,
            "message_id": "a1",
            "action": "A",
            "retry_count": 2,
            "error": "AError: a1 failed",
            "queue": queue,
            "body": '{"action":"A","data":{"id":"a1"}}',
            "body_bytes": len(event("A", {"id": "a1"})),
        },
        {
            "position": 2,
            "message_id": "b1",
            "action": "B",
            "retry_count": 2,
            "error": "BError: b1 failed",
            "queue": queue,
            "body": '{"action":"B","data":{"id":"b1"}}',
            "body_bytes": len(event("B", {"id": "b1"})),
        },
    ]
    after = await collect(amqp_channel, f"{queue}.dlq", 6)
    assert [m.header.properties.message_id for m in after] == [i for i, _ in LETTERS]
    assert after[0].body == event("A", {"id": "a1"})
    assert (after[0].header.properties.headers or {})["x-retry-count"] == 2
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0  # nothing more, no copy


# --- purge --------------------------------------------------------------------------------


async def test_purge_needs_yes_and_deletes_only_what_is_selected(
    amqp_channel: Channel, names: Names
) -> None:
    queue = names.queue("dlq-purge")
    await dead_letters(amqp_channel, queue, LETTERS)

    refused = await run_command("dlq", "purge", queue, "--action", "A")
    some = await run_command("dlq", "purge", queue, "--action", "A", "--yes")
    remaining = await ids_in(amqp_channel, f"{queue}.dlq")
    await dead_letters(amqp_channel, queue, LETTERS)
    everything = await run_command("dlq", "purge", queue, "--yes", "--json")

    assert refused.code == 2
    assert "add --yes" in refused.stderr
    assert some.code == 0, some.stderr
    assert f"deleted 3 of 6 dead letters from {queue}.dlq" in some.stdout
    assert remaining == ["b1", "junk", "c1"]
    assert everything.code == 0, everything.stderr
    assert orjson.loads(everything.stdout) == {"queue": f"{queue}.dlq", "deleted": 6}
    assert await queue_depth(amqp_channel, f"{queue}.dlq") == 0


# --- errors -------------------------------------------------------------------------------


async def test_a_missing_queue_is_a_usage_error_and_a_dead_broker_unreachable(
    names: Names,
) -> None:
    queue = names.queue("dlq-missing")

    missing = await run_command("dlq", "stats", queue)
    dead = await run_command(
        "dlq", "peek", queue, env=command_env("amqp://guest:guest@127.0.0.1:1/")
    )

    assert missing.code == 2
    assert missing.stderr.strip().endswith(f"error: queue '{queue}.dlq' does not exist")
    assert dead.code == 3
    assert "eventrabbit: error: cannot connect to amqp://guest:******@127.0.0.1:1/" in dead.stderr
