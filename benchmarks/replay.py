"""Replay speed: events per second replayed from a stream, against live consume of the same
events through the same handler, and a hand-written aiormq loop reading the stream as the
reference — all in one run, on one broker.

    python -m benchmarks.replay                 # 100,000 events, 3 rounds
    python -m benchmarks.replay --n 10000 --rounds 1

The events are published once, through a fanout exchange bound to a stream and to a classic
queue per round (publishing is not timed). Prints one line per client with the median rate and
its ratio to the raw loop; exits 2 if the broker cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid

import aiormq
import aiormq.abc
import orjson

from eventrabbit import (
    ConsumeChannel,
    ExchangeType,
    QueueConfig,
    StreamChannel,
    build_event_dependencies,
    capture,
)

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
ACTION = "BENCH"
PREFETCH = 500


async def raw_stream(stream: str, n: int) -> float:
    """The reference: aiormq consumes the stream from the first offset, decodes each body and
    calls a trivial handler; acks every half prefetch."""
    connection = await aiormq.connect(URL)
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=PREFETCH)
    count = 0
    done = asyncio.Event()

    async def handler(i: int, name: str) -> None:
        nonlocal count
        count += 1

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        event = orjson.loads(message.body)
        await handler(**event["data"])
        tag = message.delivery.delivery_tag  # type: ignore[union-attr]
        if count % (PREFETCH // 2) == 0 or count == n:
            await channel.basic_ack(tag, multiple=True)  # type: ignore[arg-type]
        if count >= n:
            done.set()

    began = time.perf_counter()
    await channel.basic_consume(stream, on_message, arguments={"x-stream-offset": "first"})
    await done.wait()
    elapsed = time.perf_counter() - began
    await connection.close()
    return n / elapsed


async def replay(stream: StreamChannel, n: int) -> float:
    events, handle = build_event_dependencies(URL)
    count = 0

    @events.consumer(ACTION)
    async def handler(i: int, name: str) -> None:
        nonlocal count
        count += 1

    began = time.perf_counter()
    summary = await handle.replay(stream, start="first", stop=n - 1)
    elapsed = time.perf_counter() - began
    await handle.close()
    assert summary.handled == count == n, (summary, count)
    return n / elapsed


async def live(exchange: str, queue: str, n: int, fill: aiormq.abc.AbstractChannel) -> float:
    events, handle = build_event_dependencies(URL)
    count = 0
    done = asyncio.Event()

    @events.consumer(ACTION)
    async def handler(i: int, name: str) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    target = ConsumeChannel(URL, queue, queue_config=QueueConfig(prefetch_count=PREFETCH))
    # Filled before consuming starts (as consume declares it: durable, no arguments).
    await fill.queue_declare(queue, durable=True)
    await fill.queue_bind(queue, exchange)
    await publish(fill, exchange, n)
    await fill.queue_unbind(queue, exchange)
    began = time.perf_counter()
    task = asyncio.create_task(handle.consume(target))
    await done.wait()
    elapsed = time.perf_counter() - began
    await handle.close()
    await asyncio.gather(task, return_exceptions=True)
    return n / elapsed


async def publish(channel: aiormq.abc.AbstractChannel, exchange: str, n: int) -> None:
    window = 1000
    for start in range(0, n, window):
        await asyncio.gather(
            *(
                channel.basic_publish(
                    orjson.dumps({"action": ACTION, "data": {"i": i, "name": "x"}}),
                    exchange=exchange,
                )
                for i in range(start, min(n, start + window))
            )
        )


async def main(n: int, rounds: int) -> int:
    try:
        connection = await aiormq.connect(URL)
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        print(f"the broker cannot be reached: {exc}", file=sys.stderr)
        return 2
    suffix = uuid.uuid4().hex[:8]
    exchange, stream_name = f"bench.replay.{suffix}", f"bench.replay.stream.{suffix}"
    channel = await connection.channel(publisher_confirms=True)
    await channel.exchange_declare(exchange, exchange_type="fanout")
    stream = StreamChannel(URL, stream_name, exchange, ExchangeType.FANOUT, prefetch_count=PREFETCH)
    queues: list[str] = []
    rates: dict[str, list[float]] = {"raw stream": [], "replay": [], "live consume": []}
    try:
        await capture(stream)
        await publish(channel, exchange, n)
        await channel.queue_unbind(stream_name, exchange)  # the stream holds exactly n
        for round_ in range(rounds):
            print(f"round {round_ + 1}/{rounds}", file=sys.stderr)
            rates["raw stream"].append(await raw_stream(stream_name, n))
            rates["replay"].append(await replay(stream, n))
            queues.append(f"bench.replay.live.{suffix}.{round_}")
            rates["live consume"].append(await live(exchange, queues[-1], n, channel))
    finally:
        for queue in [
            stream_name,
            *queues,
            *(f"{q}.{s}" for q in queues for s in ("delay", "dlq")),
        ]:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await connection.close()
    reference = statistics.median(rates["raw stream"])
    print(f"{n} events, {rounds} round(s), prefetch {PREFETCH}; median events/s:")
    for client, values in rates.items():
        rate = statistics.median(values)
        print(f"  {client:<14} {rate:>10,.0f}/s  {rate / reference:5.2f} x raw stream")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="events (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.n, arguments.rounds)))
