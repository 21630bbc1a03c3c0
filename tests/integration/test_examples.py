"""The examples run as a newcomer runs them: as scripts, in subprocesses, on the test broker.

- ``examples/demo.py`` finishes by itself, shows all six steps and cleans up after itself;
  without a broker it says so in one line, password censored, and exits 2.
- ``examples/full_example.py`` (the seed README's Full Example) consumes its queues and its
  handlers run — also in a copy that imports ``ExchangeType`` from aio-pika, as the seed does.
- ``examples/service.py`` stops gracefully and exits 0 on SIGTERM and on SIGINT.

The Full Example's queues and exchanges have fixed names (the seed's), so its tests delete
them before and after; pytest runs these tests one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import aiormq
import aiormq.abc
import pytest

from tests.conftest import CLEANUP_TIMEOUT, Names
from tests.helpers import (
    Calls,
    assert_absent,
    consumer_count,
    event,
    eventually,
    publish_raw,
    unique,
)

# The examples run in subprocesses: an in-memory broker lives in one process and cannot be
# shared with them, so whatever they do is observed on the real broker only.
pytestmark = pytest.mark.real_broker

Channel = aiormq.abc.AbstractChannel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO = EXAMPLES / "demo.py"
FULL_EXAMPLE = EXAMPLES / "full_example.py"
SERVICE = EXAMPLES / "service.py"

#: How long a started example may take to consume its queues, or to react to an event.
STARTUP_TIMEOUT = 20.0
EVENT_TIMEOUT = 15.0
#: service.py must exit within this many seconds of SIGTERM/SIGINT.
SHUTDOWN_TIMEOUT = 15.0

# The seed's Full Example topology.
SEED_QUEUES = (
    "calendar_user_sync",
    "calendar_google_sync",
    "calendar_user_status_sync",
    "tracker_info",
)
SEED_EXCHANGES = (
    "PROFILE_FANOUT_EXCHANGE",
    "GOOGLE_FANOUT_EXCHANGE",
    "USER_STATUS_FANOUT_EXCHANGE",
)
EVENTRABBIT_IMPORT = "from eventrabbit import ExchangeType\n"
AIO_PIKA_IMPORT = "from aio_pika import ExchangeType\n"


def example_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of an example: the test broker, unbuffered output."""
    return {**os.environ, "EVENTRABBIT_URL": url, "PYTHONUNBUFFERED": "1", **extra}


class Example:
    """A running example script: its output (stdout and stderr) is read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._output: Calls[str] = Calls()
        #: The lines of output so far.
        self.lines = self._output.values
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self._output.add(raw.decode(errors="replace").rstrip("\r\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def _exited(self, what: str) -> AssertionError:
        return AssertionError(
            f"the example exited ({self.process.returncode}) while waiting for {what}; "
            f"its output ends:\n{self.tail()}"
        )

    async def wait_output(
        self,
        done: Callable[[list[str]], bool],
        what: str,
        timeout: float = EVENT_TIMEOUT,  # noqa: ASYNC109 - reported in the AssertionError
    ) -> None:
        """Wait until ``done(lines)`` holds, looking again at each new line; fail at once when
        the output ends (the process exited)."""
        waiting = asyncio.ensure_future(self._output.until(done, what, timeout))
        await asyncio.wait({waiting, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            if done(self.lines):
                return
            raise self._exited(what)
        try:
            waiting.result()
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the example's output ends:\n{self.tail()}") from None

    async def wait_consuming(self, probe: Channel, queues: Iterable[str]) -> None:
        """Wait until each of ``queues`` has a consumer (within the startup timeout).

        The consumers are another process's: the broker's consumer count is the only view of
        them, so it is polled (:func:`eventually`).
        """
        for queue in queues:

            async def consumed(queue: str = queue) -> bool:
                if self.process.returncode is not None:
                    raise self._exited(f"a consumer on queue {queue!r}")
                return await consumer_count(probe, queue) > 0

            await eventually(
                consumed, what=f"a consumer on queue {queue!r}", timeout=STARTUP_TIMEOUT
            )

    async def wait_exit(self, timeout: float) -> int | None:  # noqa: ASYNC109
        """The exit code, or ``None`` if the process still runs after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
                await self._reader  # the rest of the output
        except TimeoutError:
            return None
        return code

    async def stop(self, sig: signal.Signals, timeout: float) -> int | None:  # noqa: ASYNC109
        """Send ``sig`` and wait for the exit; ``None`` if it did not exit in time."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait_exit(timeout)

    async def terminate(self) -> None:
        """End the process however it takes: SIGTERM, then SIGKILL."""
        if self.process.returncode is None and await self.stop(signal.SIGTERM, 5.0) is None:
            self.process.kill()
        await self.wait_exit(10.0)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def started(script: Path, env: dict[str, str]) -> AsyncIterator[Example]:
    """Run ``python script``; whatever happens in the block, it does not outlive it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=EXAMPLES.parent,
    )
    example = Example(process)
    try:
        yield example
    finally:
        await example.terminate()


async def run_demo(url: str, timeout: float) -> tuple[int | None, str, str]:  # noqa: ASYNC109
    """Run ``examples/demo.py`` on ``url`` to its end (killed after ``timeout`` s).

    Returns its exit code, stdout and stderr.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEMO),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=example_env(url),
        cwd=EXAMPLES.parent,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


# --- examples/demo.py ----------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_demo_runs_every_step_and_cleans_up(amqp_channel: Channel, broker_url: str) -> None:
    code, stdout, stderr = await run_demo(broker_url, timeout=60)
    report = f"exit code {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert code == 0, report
    assert "Traceback" not in stdout + stderr, report

    # The six numbered steps, in order.
    numbers = [int(m) for m in re.findall(r"^(\d)\. ", stdout, flags=re.MULTILINE)]
    assert numbers == [1, 2, 3, 4, 5, 6], report
    queue = re.search(r"consuming queue '(demo\.orders\.[0-9a-f]+)'", stdout)
    assert queue is not None, report
    queue_name = queue.group(1)
    expected = [
        # 1. the service starts on a queue bound to a fanout exchange
        "bound to fanout exchange 'demo.events.",
        "RetryConfig(max_retries=2, retry_delay_seconds=1)",
        # 2. producer -> consumer
        "2. @events.producer place_order(order_id=1, item='book') publishes ORDER_PLACED",
        "@events.consumer on_order_placed(order_id=1, item='book') ran",
        # 3. function -> reply action -> another consumer
        "@events.function check_stock(item='book') returns",
        "-> STOCK_CHECKED",
        "@events.consumer on_stock_checked(item='book', in_stock=3) ran",
        # 4. a failure, then the delayed retry succeeds
        "send_invoice(invoice_id=7) attempt 1: raising ConnectionError",
        "send_invoice(invoice_id=7) attempt 2: succeeded",
        # 5. the poison message, read back from the dead-letter queue
        f"found in '{queue_name}.dlq': body b'this is not JSON'",
        "x-eventrabbit-error: body is not valid JSON",
        # 6. RPC over direct reply-to
        "with reply_to=amq.rabbitmq.reply-to",
        "@events.consumer get_price(item='book') ran",
        'reply (correlation_id matches: True): {"data":{"item":"book","price":12.5}}',
        # the summary
        "demo: all 6 steps done in",
    ]
    missing = [line for line in expected if line not in stdout]
    assert not missing, f"missing {missing}\n{report}"
    # The retry came back after the configured delay, not at once.
    delay = re.search(r"attempt 2: succeeded, (\d+\.\d) s after the failure", stdout)
    assert delay is not None, report
    assert float(delay.group(1)) >= 0.9, report
    # eventrabbit's own log lines for the retry and the dead letter (stderr, WARNING level).
    assert "retry 1 of message" in stderr, report
    assert "ConnectionError: mail server busy (simulated)" in stderr, report
    assert "dead-lettering message" in stderr, report
    assert stdout.rstrip().splitlines()[-1].startswith("demo: all 6 steps done"), report

    # Everything the demo declared is gone.
    await assert_absent(
        amqp_channel,
        queues=(queue_name, f"{queue_name}.delay", f"{queue_name}.dlq"),
        exchanges=(queue_name.replace("demo.orders.", "demo.events."),),
    )


async def test_demo_without_broker_says_so_in_one_line() -> None:
    code, stdout, stderr = await run_demo("amqp://guest:secretpw@127.0.0.1:1/", timeout=30)
    output = stdout + stderr
    report = f"exit code {code}, output:\n{output}"
    assert code == 2, report
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, report
    assert lines[0].startswith("demo: no RabbitMQ at amqp://guest:******@127.0.0.1:1/"), report
    assert "rabbitmq-server -detached" in lines[0], report
    assert "secretpw" not in output, report
    assert "Traceback" not in output, report


# --- examples/full_example.py (the seed README's Full Example) -----------------------------------


def seed_names() -> Names:
    names = Names()
    names.queues.extend(SEED_QUEUES)  # delete_all adds .delay and .dlq
    names.exchanges.extend(SEED_EXCHANGES)
    return names


@pytest.fixture
async def seed_topology(broker_url: str) -> AsyncIterator[None]:
    """The Full Example's fixed queues and exchanges: none before the test, none after it."""
    async with asyncio.timeout(CLEANUP_TIMEOUT):
        await seed_names().delete_all(broker_url)
    try:
        yield
    finally:
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            await seed_names().delete_all(broker_url)


def counts(lines: list[str]) -> list[int]:
    """The numbers of the example's ``count N`` lines."""
    return [int(line.split()[1]) for line in lines if re.fullmatch(r"count \d+", line)]


@pytest.mark.usefixtures("seed_topology")
@pytest.mark.parametrize(
    "exchange_type_from",
    [
        pytest.param("eventrabbit", id="as-shipped"),
        pytest.param("aio_pika", id="seed-import-from-aio_pika"),
    ],
)
async def test_full_example_consumes_and_its_handlers_run(
    exchange_type_from: str, tmp_path: Path, amqp_channel: Channel, broker_url: str
) -> None:
    script = FULL_EXAMPLE
    if exchange_type_from == "aio_pika":
        source = FULL_EXAMPLE.read_text()
        assert source.count(EVENTRABBIT_IMPORT) == 1
        script = tmp_path / "full_example_aio_pika.py"
        script.write_text(source.replace(EVENTRABBIT_IMPORT, AIO_PIKA_IMPORT))

    async with started(script, example_env(broker_url)) as example:
        await example.wait_consuming(amqp_channel, SEED_QUEUES)

        # a1 handles TRACKERS_INFO and publishes another one: the seed's endless ping-pong.
        await publish_raw(
            amqp_channel,
            event("TRACKERS_INFO", {"b": "x"}),
            routing_key="",
            exchange="GOOGLE_FANOUT_EXCHANGE",
            content_type="application/json",
        )
        await example.wait_output(
            lambda lines: len(counts(lines)) >= 3, "three 'count' lines from a1"
        )
        # a2 handles TRACKERS_INFO_1 (and publishes one again through PROFILE_FANOUT_EXCHANGE).
        await publish_raw(
            amqp_channel,
            event("TRACKERS_INFO_1", {"b": "y"}),
            routing_key="",
            exchange="PROFILE_FANOUT_EXCHANGE",
            content_type="application/json",
        )
        await example.wait_output(lambda lines: "y 23" in lines, "a2's 'y 23' line")
        before_stop = list(example.lines)

        # The seed's main has no signal handling: asyncio.run turns Ctrl+C (SIGINT) into
        # cancelling main, which stops the consumers, and then raises KeyboardInterrupt.
        # (Should it hang, started() ends it with SIGTERM and SIGKILL.)
        stopped = await example.stop(signal.SIGINT, SHUTDOWN_TIMEOUT)
        assert stopped is not None, f"still running {SHUTDOWN_TIMEOUT} s after SIGINT"

    report = "\n".join(before_stop[:40])
    assert before_stop[0] == "x 23", report  # a1 got our event first
    numbers = counts(before_stop)
    assert numbers[:3] == [1, 2, 3], report
    assert numbers == sorted(numbers), report
    assert "12 23" in before_stop, report  # a1 handled the event that retro.abc() published
    assert "Traceback" not in "\n".join(before_stop), report
    assert "dead-letter" not in "\n".join(before_stop), report


# --- examples/service.py -------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_service_stops_gracefully_on_signal(
    sig: signal.Signals, amqp_channel: Channel, broker_url: str, names: Names
) -> None:
    prefix = unique("svc")
    queues = [f"{prefix}.users", f"{prefix}.email", f"{prefix}.rpc"]
    names.queues.extend(queues)
    names.exchanges.extend([f"{prefix}.users", f"{prefix}.email"])
    env = example_env(broker_url, EVENTRABBIT_SERVICE_PREFIX=prefix)

    async with started(SERVICE, env) as service:
        await service.wait_consuming(amqp_channel, queues)
        # It works: USER_CREATED -> SEND_EMAIL -> EMAIL_SENT across two of its queues.
        await publish_raw(
            amqp_channel,
            event("USER_CREATED", {"user_id": 1, "name": "Ada"}),
            routing_key="",
            exchange=f"{prefix}.users",
        )
        await service.wait_output(
            lambda lines: any(line.endswith("email to user1@example.com sent") for line in lines),
            "the EMAIL_SENT line",
        )

        code = await service.stop(sig, SHUTDOWN_TIMEOUT)
        report = f"exit code {code}, output:\n{service.output}"
        assert code == 0, report
    assert f"service: {sig.name} received, stopping gracefully" in service.lines, report
    assert service.lines[-1] == "service: stopped", report
    assert "Traceback" not in service.output, report
    for queue in queues:
        assert await consumer_count(amqp_channel, queue) == 0
