"""The latency workload's producer, run in a process of its own.

``python -m benchmarks.producer URL QUEUE RATE N`` publishes events ``0..N-1`` to ``QUEUE`` at
``RATE`` per second with a raw aiormq channel (no confirms, so that it costs little and paces
well): event ``i`` is due at ``t0 + i / RATE``, and each wake-up sends the batch of events due.
``RATE`` ``inf`` sends them as fast as the channel takes them (the suite's saturation run).
When done it writes each event's send time, as native doubles (``array('d')``), to stdout.

Its own process, so that the consumer under test has its core to itself and the producer's
pacing does not wait on the consumer's loop (in one process, ~3,000/s was all it could offer on a
2-core machine). The times are ``time.perf_counter()``: on Linux ``CLOCK_MONOTONIC``, one clock
for every process of the machine, which the consumer's handler reads too.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from array import array

import aiormq
from pamqp import commands as spec

from .broker import event_body

_TRANSIENT = spec.Basic.Properties(content_type="application/json", delivery_mode=1)


async def produce(url: str, queue: str, rate: float, n: int) -> array[float]:
    """Publish events ``0..n-1`` at ``rate`` per second; their send times."""
    sent = array("d", bytes(8 * n))
    bodies = [event_body(i) for i in range(n)]
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while i < n:
            due = n if rate == math.inf else min(n, int((loop.time() - start) * rate) + 1)
            while i < due:
                sent[i] = time.perf_counter()
                await channel.basic_publish(bodies[i], routing_key=queue, properties=_TRANSIENT)
                i += 1
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    finally:
        await connection.close()
    return sent


def main(argv: list[str]) -> int:
    """Produce as the arguments say; the send times to stdout."""
    url, queue, rate, n = argv
    sent = asyncio.run(produce(url, queue, float(rate), int(n)))
    sys.stdout.buffer.write(sent.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
