"""The examples run as a newcomer runs them: as scripts, in subprocesses, on the test broker.

- ``examples/demo.py`` finishes by itself, shows all six steps and cleans up after itself;
  without a broker it says so in one line, password censored, and exits 2.
- ``examples/full_example.py`` (the seed README's Full Example) consumes its queues and its
  handlers run — also in a copy that imports ``ExchangeType`` from aio-pika, as the seed does.
- ``examples/service.py`` stops gracefully and exits 0 on SIGTERM and on SIGINT; its health
  checks (``examples/health.py``) answer over HTTP: ``/livez`` while it runs, ``/healthz`` 200
  only while every queue consumes (503 while the broker is unreachable — a TCP proxy in front of
  the broker, :class:`Gate`, makes it so), ``/metrics`` with the messages it handled, or 404
  without prometheus_client.

The Full Example's queues and exchanges have fixed names (the seed's), so its tests delete
them before and after; pytest runs these tests one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiormq
import aiormq.abc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.conftest import CLEANUP_TIMEOUT, Names, Services
from tests.helpers import (
    Calls,
    assert_absent,
    censor_url,
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
    env = example_env(broker_url, EVENTRABBIT_SERVICE_PREFIX=prefix, EVENTRABBIT_HEALTH_PORT="0")

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


# --- examples/service.py: health checks and metrics (examples/health.py) -------------------------

#: The line service.py prints once its health checks listen.
HEALTH_LINE = re.compile(r"service: health checks on http://([^:/]+):(\d+) ")
#: What the test runs instead of service.py to run it as if prometheus_client were not installed.
WITHOUT_PROMETHEUS = """\
import runpy, sys
sys.modules["prometheus_client"] = None  # import prometheus_client raises ImportError
sys.path.insert(0, {examples!r})
runpy.run_path({service!r}, run_name="__main__")
"""


@dataclass
class Reply:
    """An HTTP response, as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json", self
        return json.loads(self.body)


@dataclass
class Endpoint:
    """The health checks of a running service.py."""

    host: str
    port: int

    async def request(self, path: str, method: str = "GET") -> Reply:
        """``method path`` on a connection of its own, read to the end (the server closes)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            request = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            async with asyncio.timeout(EVENT_TIMEOUT):
                raw = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", raw
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["connection"] == "close", raw
        length = int(headers["content-length"])
        assert len(body) == (0 if method == "HEAD" else length), raw
        return Reply(int(status), headers, body)

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: its status and JSON body."""
        reply = await self.request("/healthz")
        return reply.status, reply.json()


async def health_of(service: Example) -> Endpoint:
    """The address service.py says its health checks listen on."""
    await service.wait_output(
        lambda lines: any(HEALTH_LINE.match(line) for line in lines),
        "the health checks' address",
        timeout=STARTUP_TIMEOUT,
    )
    match = next(m for line in service.lines if (m := HEALTH_LINE.match(line)))
    return Endpoint(match.group(1), int(match.group(2)))


def service_env(url: str, names: Names, **extra: str) -> tuple[dict[str, str], str, list[str]]:
    """The environment of a service.py on ``url`` with queues of its own (deleted after the
    test), its health checks on a free port; its queue prefix and queues."""
    prefix = unique("svc")
    queues = [f"{prefix}.users", f"{prefix}.email", f"{prefix}.rpc"]
    names.queues.extend(queues)
    names.exchanges.extend([f"{prefix}.users", f"{prefix}.email"])
    env = example_env(url, EVENTRABBIT_SERVICE_PREFIX=prefix, EVENTRABBIT_HEALTH_PORT="0", **extra)
    return env, prefix, queues


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a Prometheus text exposition: name, labels, value."""
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]


def total(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(
        value for sample, have, value in found if sample == name and labels.items() <= have.items()
    )


async def test_service_serves_health_checks_and_metrics(
    amqp_channel: Channel, broker_url: str, names: Names
) -> None:
    env, prefix, queues = service_env(broker_url, names)
    async with started(SERVICE, env) as service:
        health = await health_of(service)
        assert health.host == "127.0.0.1"  # the default: not reachable from other machines

        live = await health.request("/livez")
        assert (live.status, live.body) == (200, b"ok\n")

        async def ready() -> dict[str, Any] | None:
            status, body = await health.readiness()
            return body if status == 200 else None

        body = await eventually(ready, what="/healthz 200", timeout=STARTUP_TIMEOUT)
        # The broker agrees: each queue has its consumer.
        await service.wait_consuming(amqp_channel, queues)
        assert body["ready"] is True
        assert body["stopping"] is False
        assert sorted(q["queue"] for q in body["queues"]) == sorted(queues), body
        for queue in body["queues"]:
            assert queue["consuming"] is True, body
            assert queue["broker"] == censor_url(broker_url), body
            assert datetime.fromisoformat(queue["since"]).tzinfo == UTC, body
            assert (queue["reconnects"], queue["last_error"], queue["ended"]) == (0, None, False)

        # One USER_CREATED: SEND_EMAIL is published and handled, EMAIL_SENT published and handled.
        await publish_raw(
            amqp_channel,
            event("USER_CREATED", {"user_id": 1, "name": "Ada"}),
            routing_key="",
            exchange=f"{prefix}.users",
        )
        consumed = "eventrabbit_messages_consumed_total"
        acked = [
            (f"{prefix}.users", "USER_CREATED"),
            (f"{prefix}.email", "SEND_EMAIL"),
            (f"{prefix}.email", "EMAIL_SENT"),
        ]

        async def counted() -> tuple[Reply, list[tuple[str, dict[str, str], float]]] | None:
            # The last ack is counted once the broker has it: after the handler's output line.
            reply = await health.request("/metrics")
            assert reply.status == 200, reply
            found = samples(reply.body.decode())
            done = all(total(found, consumed, queue=q, action=a) for q, a in acked)
            return (reply, found) if done else None

        metrics, found = await eventually(counted, what="three acked deliveries in /metrics")
        assert metrics.headers["content-type"].startswith("text/plain"), metrics
        for queue, action in acked:
            assert total(found, consumed, queue=queue, action=action, outcome="acked") == 1
            assert total(found, consumed, queue=queue, action=action) == 1
        published = "eventrabbit_messages_published_total"
        for action in ("SEND_EMAIL", "EMAIL_SENT"):
            sent = total(found, published, exchange=f"{prefix}.email", action=action)
            assert sent == 1, found
        for queue in queues:
            assert total(found, "eventrabbit_connected", queue=queue) == 1, found

        # What is not a health check.
        missing = await health.request("/nope")
        assert missing.status == 404, missing
        post = await health.request("/healthz", method="POST")
        assert (post.status, post.headers["allow"]) == (405, "GET, HEAD"), post
        head = await health.request("/healthz", method="HEAD")
        assert head.status == 200, head

        code = await service.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT)
        report = f"exit code {code}, output:\n{service.output}"
        assert code == 0, report
    assert service.lines[-1] == "service: stopped", report
    assert "Traceback" not in service.output, report


class Gate:
    """A TCP proxy in front of the broker that the test opens and shuts. Shut, it refuses
    connections and has cut those it carried: to the service, the broker is unreachable, as in
    a network partition or a broker restart."""

    def __init__(self, broker_url: str) -> None:
        broker = URL(broker_url)
        assert broker.host is not None
        assert broker.port is not None
        self.upstream = (broker.host, broker.port)
        self.broker_url = broker_url
        #: The port it listens on: chosen when first opened, the same when opened again.
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """The broker's URL through the gate."""
        return str(URL(self.broker_url).with_host("127.0.0.1").with_port(self.port))

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        """Refuse connections, and cut the open ones (both ends)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _pipe(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        writers = [to_client]
        self._writers.add(to_client)
        try:
            broker, to_broker = await asyncio.open_connection(*self.upstream)
            writers.append(to_broker)
            self._writers.add(to_broker)
            await asyncio.gather(_copy(client, to_broker), _copy(broker, to_client))
        finally:
            for writer in writers:
                writer.close()
                self._writers.discard(writer)
            self._pipes.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Pass bytes on until either end closes; then close ``writer``, which ends the other
    direction too."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def gate(broker_url: str) -> AsyncIterator[Gate]:
    """A :class:`Gate` to the broker under test, open; shut after the test."""
    opened = Gate(broker_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.shut()


async def test_service_is_ready_only_while_its_queues_consume(
    gate: Gate, broker_url: str, names: Names
) -> None:
    # The service starts with the broker unreachable: alive, not ready.
    await gate.shut()
    env, _, queues = service_env(gate.url, names)
    async with started(SERVICE, env) as service:
        health = await health_of(service)

        async def not_ready(why: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
            status, body = await health.readiness()
            if status == 503 and len(body["queues"]) == len(queues) and why(body):
                return body
            return None

        def tried(body: dict[str, Any]) -> bool:
            return all(q["last_error"] for q in body["queues"])

        body = await eventually(lambda: not_ready(tried), what="/healthz 503 after a failure")
        assert body["ready"] is False, body
        for queue in body["queues"]:
            assert queue["consuming"] is False, body
            assert queue["since"] is None, body
            assert "cannot connect" in queue["last_error"], body
        assert "guest:guest" not in json.dumps(body), body  # the password is censored
        assert (await health.request("/livez")).status == 200

        async def ready() -> dict[str, Any] | None:
            status, body = await health.readiness()
            return body if status == 200 else None

        # The broker comes back: ready.
        await gate.open()
        body = await eventually(ready, what="/healthz 200", timeout=STARTUP_TIMEOUT)
        assert [q["reconnects"] for q in body["queues"]] == [0, 0, 0], body

        # The connection is cut and the broker unreachable again: not ready, still alive.
        await gate.shut()

        def lost(body: dict[str, Any]) -> bool:
            return not any(q["consuming"] for q in body["queues"])

        body = await eventually(lambda: not_ready(lost), what="/healthz 503 after the cut")
        assert all(q["last_error"] for q in body["queues"]), body
        assert (await health.request("/livez")).status == 200

        # Back: ready again, each queue after one reconnect.
        await gate.open()
        body = await eventually(ready, what="/healthz 200 again", timeout=STARTUP_TIMEOUT)
        assert [q["reconnects"] for q in body["queues"]] == [1, 1, 1], body
        assert all(q["consuming"] for q in body["queues"]), body

        code = await service.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT)
        report = f"exit code {code}, output:\n{service.output}"
        assert code == 0, report
    assert service.lines[-1] == "service: stopped", report
    # aiormq logs the cut connection with its traceback (its reader loop, through the frame
    # source eventrabbit hands it); no traceback runs through the example.
    frames = [line for line in service.lines if line.startswith('  File "')]
    inside = ("/aiormq/", "/asyncio/", "/eventrabbit/frame_source.py")
    assert all(any(part in f for part in inside) for f in frames), report


async def test_service_without_prometheus_client_has_no_metrics(
    tmp_path: Path, broker_url: str, names: Names
) -> None:
    script = tmp_path / "service_without_prometheus.py"
    script.write_text(WITHOUT_PROMETHEUS.format(examples=str(EXAMPLES), service=str(SERVICE)))
    env, _, _ = service_env(broker_url, names)
    async with started(script, env) as service:
        health = await health_of(service)

        async def ready() -> bool:
            status, _ = await health.readiness()
            return status == 200

        await eventually(ready, what="/healthz 200", timeout=STARTUP_TIMEOUT)
        metrics = await health.request("/metrics")
        assert metrics.status == 404, metrics
        assert b"pip install 'eventrabbit[prometheus]'" in metrics.body, metrics
        code = await service.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT)
        report = f"exit code {code}, output:\n{service.output}"
        assert code == 0, report
    assert "service: /metrics answers 404: pip install 'eventrabbit[prometheus]'" in service.lines
    assert "Traceback" not in service.output, report


@pytest.mark.parametrize("port", ["taken", "http"])
async def test_service_without_its_health_address_exits_2(
    port: str, amqp_channel: Channel, broker_url: str, names: Names
) -> None:
    # Another server holds a port: the service cannot listen there.
    holder = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        taken = str(holder.sockets[0].getsockname()[1])
        env, _, queues = service_env(broker_url, names)
        env["EVENTRABBIT_HEALTH_PORT"] = taken if port == "taken" else port
        async with started(SERVICE, env) as service:
            code = await service.wait_exit(SHUTDOWN_TIMEOUT)
    finally:
        holder.close()
        await holder.wait_closed()
    report = f"exit code {code}, output:\n{service.output}"
    assert code == 2, report
    assert len(service.lines) == 1, report
    assert service.lines[0].startswith("service: cannot serve health checks: "), report
    if port == "http":
        assert "EVENTRABBIT_HEALTH_PORT must be a port number (0 to 65535), not 'http'" in report
    # It stopped before it consumed: its queues were not even declared.
    await assert_absent(amqp_channel, queues=queues)


def load_health() -> Any:
    """examples/health.py as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("example_health", EXAMPLES / "health.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_health_server_is_ready_only_between_start_and_stop(services: Services) -> None:
    # In this process, on a handle of the test's: the moments a subprocess cannot show.
    _, handle = services.build()
    server = load_health().HealthServer(handle.status)
    host, port = await server.start("127.0.0.1", 0)
    try:
        health = Endpoint(host, port)
        # Nothing consumed yet: not ready, though alive.
        assert await health.readiness() == (503, {"ready": False, "stopping": False, "queues": []})
        assert (await health.request("/livez")).status == 200
        metrics = await health.request("/metrics")  # no metrics function given
        assert metrics.status == 404, metrics

        target = services.target("health")
        await services.consume(handle, target)
        status, body = await health.readiness()
        assert (status, body["ready"]) == (200, True), body

        # The service is stopping (a signal came): not ready, while its queue still consumes.
        server.stopping = True
        status, body = await health.readiness()
        assert (status, body["ready"], body["stopping"]) == (503, False, True), body
        assert [q["consuming"] for q in body["queues"]] == [True], body
        assert (await health.request("/livez")).status == 200
    finally:
        await server.close()
    with pytest.raises(ConnectionRefusedError):
        await health.request("/livez")
