"""``eventrabbit replay``: ``--from``/``--to`` parsed as a table, and a replay of a captured
stream through a service module's handler, run as a subprocess against the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from eventrabbit import ExchangeType, StreamChannel, build_event_dependencies, capture
from eventrabbit.cli.exits import CommandError
from eventrabbit.cli.replay import start_of, stop_of
from eventrabbit.connection import open_connection
from tests.cli.conftest import CLI, command_env
from tests.helpers import BROKER_URL, unique

TARGET = "tests.cli.services_replay.service:STREAM"


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("first", "first"),
        ("next", "next"),
        ("42", 42),
        ("15m", timedelta(minutes=15)),
        ("1.5h", timedelta(hours=1.5)),
        ("7d", timedelta(days=7)),
        ("2026-12-03T10:00:00+00:00", datetime(2026, 12, 3, 10, tzinfo=UTC)),
        (
            "2026-12-03T10:00:00+02:00",
            datetime(2026, 12, 3, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_from(text: str, start: object) -> None:
    assert start_of(text) == start


@pytest.mark.parametrize(
    ("text", "stop"),
    [("idle", "idle"), ("follow", None), ("100", 100)],
)
def test_to(text: str, stop: object) -> None:
    assert stop_of(text) == stop


@pytest.mark.parametrize(
    ("parse", "text", "why"),
    [
        (start_of, "2026-12-03T10:00:00", "no time zone"),
        (start_of, "yesterday", "expected an offset"),
        (start_of, "-3", "expected an offset"),
        (stop_of, "15m", "only a --from"),
    ],
)
def test_bad_positions_are_usage_errors(parse: object, text: str, why: str) -> None:
    with pytest.raises(CommandError, match=why):
        parse(text)  # type: ignore[operator]


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    name = unique("replay")
    yield name
    connection = await open_connection(BROKER_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(f"{name}.ex")
    finally:
        await connection.close()


@pytest.mark.real_broker
async def test_a_captured_stream_is_replayed_through_the_modules_handler(
    cli: type[CLI], stream: str, tmp_path: Path
) -> None:
    channel = StreamChannel(BROKER_URL, stream, f"{stream}.ex", ExchangeType.FANOUT)
    await capture(channel)  # declared and bound: from now on it records
    events, handle = build_event_dependencies(BROKER_URL)
    try:
        for n in range(6):
            await events.publish(f"{stream}.ex", "COUNTED", {"n": n})
    finally:
        await handle.close()
    out = tmp_path / "handled.txt"
    env = command_env(REPLAY_STREAM=stream, REPLAY_OUT=str(out))

    ran = await cli.run("replay", TARGET, "--json", env=env)
    assert ran.code == 0, ran.stderr
    summary = orjson.loads(ran.stdout)
    assert (summary["handled"], summary["first_offset"], summary["last_offset"]) == (6, 0, 5)
    assert out.read_text().split() == [str(n) for n in range(6)]

    out.unlink()
    ran = await cli.run("replay", TARGET, "--from", "4", env=env)
    assert ran.code == 0, ran.stderr
    assert "replayed 2 events" in ran.stdout
    assert out.read_text().split() == ["4", "5"]

    # A checkpoint carries over to the next process: it resumes at checkpoint + 1.
    out.unlink()
    resume = ["--checkpoint", "projection", "--checkpoint-dir", str(tmp_path)]
    ran = await cli.run("replay", TARGET, *resume, env=env)
    assert ran.code == 0, ran.stderr
    events, handle = build_event_dependencies(BROKER_URL)
    try:
        for n in range(6, 9):
            await events.publish(f"{stream}.ex", "COUNTED", {"n": n})
    finally:
        await handle.close()
    ran = await cli.run("replay", TARGET, *resume, "--json", env=env)
    assert ran.code == 0, ran.stderr
    summary = orjson.loads(ran.stdout)
    assert (summary["handled"], summary["first_offset"], summary["last_offset"]) == (3, 6, 8)
    assert out.read_text().split() == [str(n) for n in range(9)]  # each once, in order

    ran = await cli.run("replay", "tests.cli.services_replay.service:events", env=env)
    assert ran.code == 2
    assert "is not a StreamChannel" in ran.stderr
