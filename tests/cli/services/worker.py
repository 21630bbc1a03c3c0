"""A service whose handler records each message it starts and finishes in a file.

Environment: ``RUN_TEST_QUEUE`` (the queue), ``RUN_TEST_RECORD`` (the file: lines
``start N PID`` and ``done N PID``); optionally ``EVENTRABBIT_URL`` (the broker, as
``run --url`` sets it; default: the test broker), ``RUN_TEST_HOLD`` (``1``: every handler
waits until the process gets SIGUSR1, so the test decides when in-flight handlers finish),
``RUN_TEST_DELAY`` (seconds each handler works), ``RUN_TEST_PREFETCH`` (default 5),
``RUN_TEST_EXCHANGE`` (for ``missing_exchange``).
"""

from __future__ import annotations

import asyncio
import os
import signal

from eventrabbit import ConsumeChannel, QueueConfig, build_event_dependencies
from tests.helpers import BROKER_URL

URL = os.environ.get("EVENTRABBIT_URL", BROKER_URL)
QUEUE = os.environ.get("RUN_TEST_QUEUE", "test.run.unset")
RECORD = os.environ.get("RUN_TEST_RECORD", os.devnull)
HOLD = os.environ.get("RUN_TEST_HOLD") == "1"
DELAY = float(os.environ.get("RUN_TEST_DELAY", "0"))
PREFETCH = int(os.environ.get("RUN_TEST_PREFETCH", "5"))

events, handle = build_event_dependencies(URL, idle_timeout=None)


def record(what: str, n: int) -> None:
    # One short line per write in append mode: lines of concurrent workers do not interleave.
    with open(RECORD, "a", encoding="utf-8") as file:
        file.write(f"{what} {n} {os.getpid()}\n")


_released: asyncio.Event | None = None


def released() -> asyncio.Event:
    """Set by SIGUSR1. Its handler is installed before the first ``start`` line is written, so
    a test that signals after seeing one never kills the process with SIGUSR1's default."""
    global _released
    if _released is None:
        _released = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _released.set)
    return _released


@events.consumer("WORK")
async def work(n: int) -> None:
    gate = released() if HOLD else None
    record("start", n)
    if gate is not None:
        await gate.wait()
    if DELAY:
        await asyncio.sleep(DELAY)
    record("done", n)


channel = ConsumeChannel(URL, QUEUE, queue_config=QueueConfig(prefetch_count=PREFETCH))
#: Bound to an exchange that does not exist (and no type to declare it with): a TopologyError.
missing_exchange = ConsumeChannel(
    URL, QUEUE, exchange_name=os.environ.get("RUN_TEST_EXCHANGE", "test.run.missing")
)
#: Not a channel at all.
not_a_channel = 42
