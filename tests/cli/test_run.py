"""``eventrabbit run``: the supervisor's decisions as tables, and the command as a subprocess
against the real broker — graceful drains, a killed worker, the error paths.

The services are ``tests/cli/services/``; the test watches them through the command's stderr
(its ``ready``/``stopping`` lines), the file their handler writes (``start N PID`` /
``done N PID``) and a raw aiormq channel (the queue's depth).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiormq.abc
import pytest

from eventrabbit.cli.exits import CommandError, Exit
from eventrabbit.cli.main import parser
from eventrabbit.cli.run_logging import JsonFormatter
from eventrabbit.cli.run_options import Options, worker_argv
from eventrabbit.cli.run_service import loop_factory
from eventrabbit.cli.run_supervision import (
    MAX_DELAY,
    STABLE_SECONDS,
    STOP_MARGIN,
    Action,
    Decision,
    Ending,
    decide,
    describe,
    exit_code,
    next_streak,
    restart_delay,
    stop_deadline,
)
from tests.cli.conftest import ROOT, argv, command_env, run_command
from tests.helpers import collect, event, eventually

SERVICE = "tests.cli.services.worker"
#: Seconds a started command may take to say it is ready, or to exit (deadlines).
DEADLINE = 30.0
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None

# --- the supervisor's decisions --------------------------------------------------------------

KILLED = -int(signal.SIGKILL)


@pytest.mark.parametrize(
    ("ending", "decision"),
    [
        # Not stopping: restart, unless restarting cannot help.
        (Ending(KILLED), Decision(Action.RESTART, failed=True)),
        (Ending(1), Decision(Action.RESTART, failed=True)),
        (Ending(3), Decision(Action.RESTART, failed=True)),  # the broker went away later
        (Ending(0), Decision(Action.RESTART, failed=False)),  # someone sent it SIGTERM
        (Ending(2), Decision(Action.GIVE_UP, failed=True, code=Exit.USAGE)),
        (Ending(2, started=False), Decision(Action.GIVE_UP, failed=True, code=Exit.USAGE)),
        # Before any worker was ever ready: the service does not start; the others would fail
        # the same way.
        (Ending(3, started=False), Decision(Action.GIVE_UP, failed=True, code=Exit.UNREACHABLE)),
        (Ending(1, started=False), Decision(Action.GIVE_UP, failed=True, code=Exit.REMOTE_FAILED)),
        (
            Ending(KILLED, started=False),
            Decision(Action.GIVE_UP, failed=True, code=Exit.REMOTE_FAILED),
        ),
        (Ending(0, started=False), Decision(Action.RESTART, failed=False)),
        # Stopping: never restarted; failed unless it drained and exited 0.
        (Ending(0, stopping=True), Decision(Action.NONE, failed=False)),
        (Ending(1, stopping=True), Decision(Action.NONE, failed=True)),
        (Ending(2, stopping=True), Decision(Action.NONE, failed=True)),
        (Ending(KILLED, stopping=True, killed=True), Decision(Action.NONE, failed=True)),
        (Ending(0, stopping=True, killed=True), Decision(Action.NONE, failed=True)),
        (Ending(-int(signal.SIGKILL), stopping=True), Decision(Action.NONE, failed=True)),
        # The stop reached it while it still imported the service: nothing was in flight.
        (Ending(-int(signal.SIGTERM), stopping=True), Decision(Action.NONE, failed=False)),
        (Ending(130, stopping=True), Decision(Action.NONE, failed=False)),
        (
            Ending(-int(signal.SIGTERM), stopping=True, killed=True),
            Decision(Action.NONE, failed=True),
        ),
        (Ending(-int(signal.SIGTERM)), Decision(Action.RESTART, failed=True)),
    ],
)
def test_decide(ending: Ending, decision: Decision) -> None:
    assert decide(ending) == decision


@pytest.mark.parametrize(
    ("streak", "failed", "ran_for", "expected"),
    [
        (0, True, 0.1, 1),
        (1, True, 0.1, 2),
        (5, True, STABLE_SECONDS - 0.01, 6),
        (5, True, STABLE_SECONDS, 1),  # it ran long enough: the series starts again
        (5, False, 0.1, 0),  # a clean exit clears it
        (0, False, 100.0, 0),
    ],
)
def test_next_streak(streak: int, failed: bool, ran_for: float, expected: int) -> None:
    assert next_streak(streak, failed, ran_for) == expected


@pytest.mark.parametrize(
    ("streak", "delay"),
    [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (8, MAX_DELAY), (100, 30.0)],
)
def test_restart_delay(streak: int, delay: float) -> None:
    assert restart_delay(streak) == delay


@pytest.mark.parametrize(
    ("failed", "gave_up", "code"),
    [
        (False, None, Exit.OK),
        (True, None, Exit.REMOTE_FAILED),  # a worker died, even if its restart went well
        (True, Exit.USAGE, Exit.USAGE),
        (True, Exit.UNREACHABLE, Exit.UNREACHABLE),
        (False, Exit.USAGE, Exit.USAGE),
    ],
)
def test_exit_code(failed: bool, gave_up: Exit | None, code: Exit) -> None:
    assert exit_code(failed, gave_up) == code


def test_stop_deadline_is_the_grace_time_and_a_margin() -> None:
    assert stop_deadline(10.0) == 10.0 + STOP_MARGIN
    assert stop_deadline(0.0) == STOP_MARGIN


@pytest.mark.parametrize(
    ("returncode", "words"),
    [
        (0, "exited with 0"),
        (3, "exited with 3"),
        (KILLED, "killed by SIGKILL"),
        (-int(signal.SIGTERM), "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_describe(returncode: int, words: str) -> None:
    assert describe(returncode) == words


# --- options, the worker's command line, logging, the loop -----------------------------------


def _options(*args: str) -> Options:
    return Options.of(parser().parse_args(["run", *args]))


@pytest.mark.parametrize(
    "args",
    [
        ["svc:channels", "--workers", "3"],
        [
            "svc:channels",
            "--workers",
            "2",
            "--handle",
            "h",
            "--grace",
            "2.5",
            "--loop",
            "asyncio",
            "--connect-timeout",
            "0",
            "--log-level",
            "debug",
            "--json",
        ],
    ],
)
def test_a_worker_runs_with_the_same_options_but_no_workers(args: list[str]) -> None:
    options = _options(*args)
    command = worker_argv(options, 2, 7, "/python")
    assert command[:4] == ["/python", "-m", "eventrabbit", "run"]
    worker = _options(*command[4:])
    assert worker.workers is None
    assert (worker.worker, worker.supervisor_fd) == (2, 7)
    same = ("target", "handle", "grace", "connect_timeout", "loop", "log_level", "log_format")
    assert {k: getattr(worker, k) for k in same} == {k: getattr(options, k) for k in same}


def test_json_means_json_logs() -> None:
    assert _options("m:c", "--json").log_format == "json"
    assert _options("m:c").log_format == "text"


def test_json_log_lines_carry_the_extra_fields() -> None:
    logger = logging.getLogger("eventrabbit.consumer")
    fields = {"queue": "q", "action": "A", "message_id": "m1", "retry_count": 2, "outcome": "x"}
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("m1",),
            sys.exc_info(),
            extra=fields | {"odd": object()},
        )
    line = JsonFormatter(worker=3).format(record)
    doc = json.loads(line)
    assert "\n" not in line
    assert doc["message"] == "failed m1"
    assert (doc["level"], doc["logger"], doc["worker"]) == ("ERROR", "eventrabbit.consumer", 3)
    assert {k: doc[k] for k in fields} == fields
    assert doc["odd"].startswith("<object object")
    assert "ValueError: boom" in doc["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"])


def test_loop_choice() -> None:
    assert loop_factory("asyncio") == (None, "asyncio")
    factory, name = loop_factory("auto")
    assert name == ("uvloop" if HAS_UVLOOP else "asyncio")
    assert (factory is None) == (not HAS_UVLOOP)
    if HAS_UVLOOP:
        assert loop_factory("uvloop")[1] == "uvloop"
    else:
        with pytest.raises(CommandError, match="needs uvloop") as raised:
            loop_factory("uvloop")
        assert raised.value.code == Exit.USAGE


# --- the command, as a subprocess ------------------------------------------------------------


class Service:
    """A running ``eventrabbit run``: its stderr lines as they come, signals, its exit."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def line(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:  # noqa: ASYNC109
        """The first stderr line matching ``pattern``, waiting for it."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines:
                        if found := re.search(pattern, line):
                            return found
                    if self._reading.done():
                        break
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"no stderr line matches {pattern!r}; stderr:\n{self.stderr}")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exit_code(self, timeout: float = DEADLINE) -> int:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await self._reading
        return code

    async def end(self) -> None:
        """Make sure it is gone (teardown): SIGTERM, then SIGKILL."""
        if self.process.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(DEADLINE):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._reading


Launch = Callable[..., Awaitable[Service]]


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    """Start ``eventrabbit ARGS`` with extra environment; ended at teardown."""
    started: list[Service] = []

    async def start(*args: str, **env: str) -> Service:
        process = await asyncio.create_subprocess_exec(
            *argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=command_env(**env),
            cwd=ROOT,
        )
        started.append(Service(process))
        return started[-1]

    yield start
    for service in started:
        await service.end()


class Record:
    """The lines the service's handlers write: ``start N PID`` and ``done N PID``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self, what: str) -> list[tuple[int, int]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [(int(n), int(pid)) for kind, n, pid in (ln.split() for ln in lines) if kind == what]

    def started(self) -> list[tuple[int, int]]:
        return self._entries("start")

    def done(self) -> list[tuple[int, int]]:
        return self._entries("done")


@pytest.fixture
def record(tmp_path: Path) -> Record:
    return Record(tmp_path / "record.txt")


def _env(queue: str, record: Record, **extra: str) -> dict[str, str]:
    return {"RUN_TEST_QUEUE": queue, "RUN_TEST_RECORD": str(record.path), **extra}


async def _publish(channel: aiormq.abc.AbstractChannel, queue: str, numbers: range) -> None:
    for n in numbers:
        await channel.basic_publish(event("WORK", {"n": n}), routing_key=queue)


async def _depth(channel: aiormq.abc.AbstractChannel, queue: str) -> tuple[int, int]:
    """The queue's ready messages and consumers."""
    ok = await channel.queue_declare(queue, passive=True)
    return int(ok.message_count or 0), int(ok.consumer_count or 0)


async def _left(channel: aiormq.abc.AbstractChannel, queue: str, n: int) -> set[int]:
    """Take the ``n`` messages left in the queue: their numbers."""
    return {json.loads(m.body)["data"]["n"] for m in await collect(channel, queue, n)}


async def _settles(channel: aiormq.abc.AbstractChannel, queue: str, depth: tuple[int, int]) -> None:
    """Wait until the queue holds ``depth`` (ready messages, consumers): the broker requeues a
    closed channel's unacked deliveries and drops its consumers on its own time."""
    last: list[tuple[int, int]] = []

    async def reached() -> bool:
        last[:] = [await _depth(channel, queue)]
        return last[0] == depth

    try:
        await eventually(reached, what=f"queue {queue} at {depth}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {last}") from None


@pytest.mark.real_broker
async def test_sigterm_lets_in_flight_handlers_finish_and_acks_them(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch(
        "run",
        f"{SERVICE}:channel",
        "--grace",
        "30",
        **_env(queue, record, RUN_TEST_HOLD="1", RUN_TEST_PREFETCH="5"),
    )
    ready = await service.line(r"ready: consuming (\S+) \(pid (\d+), loop (\w+)\)")
    assert ready.group(1) == queue
    await _publish(amqp_channel, queue, range(8))  # 5 in flight (the prefetch), 3 waiting
    await eventually(lambda: len(record.started()) == 5, what="5 handlers in flight")

    service.signal(signal.SIGTERM)
    await service.line(r"SIGTERM received; stopping")
    # The handlers are held until the test releases them: the command waits for them.
    assert service.process.returncode is None
    assert record.done() == []
    service.signal(signal.SIGUSR1)

    assert await service.exit_code() == Exit.OK, service.stderr
    started = sorted(n for n, _ in record.started())
    assert sorted(n for n, _ in record.done()) == started
    # Acked: not one of the 5 is back in the queue; the 3 never delivered still are.
    await _settles(amqp_channel, queue, (3, 0))
    assert await _left(amqp_channel, queue, 3) == set(range(8)) - set(started)
    assert "stopped" in service.lines[-1]


@pytest.mark.real_broker
async def test_handlers_still_running_after_the_grace_time_are_redelivered(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch(
        "run",
        f"{SERVICE}:channel",
        "--grace",
        "0.5",
        **_env(queue, record, RUN_TEST_HOLD="1"),
    )
    await service.line(r"ready: consuming")
    await _publish(amqp_channel, queue, range(8))
    await eventually(lambda: len(record.started()) == 5, what="5 handlers in flight")

    service.signal(signal.SIGINT)
    assert await service.exit_code() == Exit.OK, service.stderr
    assert record.done() == []
    assert "still running after 0.5 s" in service.stderr
    # Nothing lost: the 5 cancelled handlers' messages went back, beside the 3 waiting ones.
    await _settles(amqp_channel, queue, (8, 0))
    assert await _left(amqp_channel, queue, 8) == set(range(8))


@pytest.mark.real_broker
async def test_workers_drain_together_on_sigterm(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch(
        "run",
        f"{SERVICE}:channel",
        "--workers",
        "2",
        "--grace",
        "30",
        **_env(queue, record, RUN_TEST_HOLD="1", RUN_TEST_PREFETCH="2"),
    )
    ready = await service.line(r"ready: 2 workers consuming (\S+) \(pids (\d+), (\d+)\)")
    pids = {int(ready.group(2)), int(ready.group(3))}
    await _publish(amqp_channel, queue, range(6))  # 2 in flight per worker, 2 waiting
    await eventually(lambda: len(record.started()) == 4, what="4 handlers in flight")
    assert {pid for _, pid in record.started()} == pids

    service.signal(signal.SIGTERM)
    for number in (1, 2):
        await service.line(rf"\[worker {number}\] eventrabbit.cli.run: SIGTERM received")
    assert service.process.returncode is None
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)

    assert await service.exit_code() == Exit.OK, service.stderr
    assert sorted(record.done()) == sorted(record.started())
    await _settles(amqp_channel, queue, (2, 0))
    assert await _left(amqp_channel, queue, 2) == set(range(6)) - {n for n, _ in record.done()}
    assert "stopped (every worker drained)" in service.lines[-1]


@pytest.mark.real_broker
async def test_a_killed_worker_is_restarted_and_no_message_is_lost(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch(
        "run",
        f"{SERVICE}:channel",
        "--workers",
        "2",
        **_env(queue, record, RUN_TEST_DELAY="0.05", RUN_TEST_PREFETCH="2"),
    )
    await service.line(r"ready: 2 workers")
    victim = int((await service.line(r"worker 1 ready \(pid (\d+)\)")).group(1))
    await _publish(amqp_channel, queue, range(60))
    await eventually(
        lambda: sum(pid == victim for _, pid in record.done()) >= 5, what="worker 1 at work"
    )

    os.kill(victim, signal.SIGKILL)  # the worker, not the supervisor
    await service.line(rf"worker 1 \(pid {victim}\) killed by SIGKILL; restarting it in")
    heir = int((await service.line(r"worker 1 ready again \(pid (\d+)\)")).group(1))
    assert heir != victim
    await _publish(amqp_channel, queue, range(60, 80))

    def handled() -> set[int]:
        return {n for n, _ in record.done()}

    await eventually(
        lambda: handled() == set(range(80)), what="every message handled", timeout=DEADLINE
    )
    assert heir in {pid for _, pid in record.done()}, "the restarted worker consumes"

    service.signal(signal.SIGTERM)
    assert await service.exit_code() == Exit.REMOTE_FAILED, service.stderr
    assert "stopped (a worker failed)" in service.lines[-1]
    await _settles(amqp_channel, queue, (0, 0))


@pytest.mark.real_broker
async def test_workers_stop_when_their_supervisor_is_killed(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch("run", f"{SERVICE}:channel", "--workers", "2", **_env(queue, record))
    await service.line(r"ready: 2 workers")
    await _settles(amqp_channel, queue, (0, 2))

    service.signal(signal.SIGKILL)
    # The workers share its stderr: the pipe ends only when both have exited.
    assert await service.exit_code() == -signal.SIGKILL
    for number in (1, 2):
        await service.line(rf"\[worker {number}\] eventrabbit.cli.run: the supervisor is gone")
    await _settles(amqp_channel, queue, (0, 0))


@pytest.mark.real_broker
async def test_json_logs_are_one_object_per_line_with_the_library_fields(
    launch: Launch, names, amqp_channel, record: Record
) -> None:
    queue = names.queue("run")
    service = await launch("run", f"{SERVICE}:channel", "--json", **_env(queue, record))
    await service.line(r'"event":"ready"')
    # An action nobody handles is bad input: dead-lettered, logged with its fields.
    await amqp_channel.basic_publish(
        event("NOBODY", {}),
        routing_key=queue,
        properties=aiormq.spec.Basic.Properties(message_id="m-42"),
    )
    await service.line(r'"outcome":"dead-lettered"')
    service.signal(signal.SIGTERM)
    assert await service.exit_code() == Exit.OK
    docs = [json.loads(line) for line in service.lines]
    ready = next(d for d in docs if d.get("event") == "ready")
    assert ready["queues"] == [queue]
    assert ready["loop"] == ("uvloop" if HAS_UVLOOP else "asyncio")
    dead = next(d for d in docs if d.get("outcome") == "dead-lettered")
    assert (dead["level"], dead["queue"], dead["message_id"]) == ("ERROR", queue, "m-42")
    assert dead["action"] == "NOBODY"


# --- error paths -----------------------------------------------------------------------------


@pytest.mark.real_broker
@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no-colon", "expected MODULE:CHANNELS"),
        ("tests.cli.services.missing:channel", "cannot import 'tests.cli.services.missing'"),
        (f"{SERVICE}:nothing", "has no attribute 'nothing'"),
        (f"{SERVICE}:not_a_channel", "is not a ConsumeChannel"),
        (
            "tests.cli.services.broken:channel",
            "importing 'tests.cli.services.broken' failed: "
            "RuntimeError: this module is broken on purpose",
        ),
        ("tests.cli.services.two_handles:channel", "pick one with --handle"),
    ],
)
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
async def test_a_bad_target_exits_2_before_any_worker_starts(
    target: str, says: str, workers: list[str]
) -> None:
    ran = await run_command("run", target, *workers, cwd=ROOT)
    assert ran.code == Exit.USAGE, ran.stderr
    assert says in ran.stderr
    assert ran.stderr.rstrip().splitlines()[-1].startswith("eventrabbit: error: ")
    assert "starting" not in ran.stderr


@pytest.mark.real_broker
async def test_a_topology_error_exits_2(names, record: Record) -> None:
    queue = names.queue("run")
    env = command_env(**_env(queue, record, RUN_TEST_EXCHANGE=names.exchange("run")))
    ran = await run_command("run", f"{SERVICE}:missing_exchange", env=env, cwd=ROOT)
    assert ran.code == Exit.USAGE, ran.stderr
    assert "does not exist" in ran.stderr.splitlines()[-1]


UNREACHABLE = "amqp://guest:secret@127.0.0.1:1/"


@pytest.mark.real_broker
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
async def test_an_unreachable_broker_exits_3_after_the_connect_timeout(
    names, record: Record, workers: list[str]
) -> None:
    # --url reaches the module as $EVENTRABBIT_URL, which the service reads its broker from.
    env = command_env(**_env(names.queue("run"), record))
    args = ["run", f"{SERVICE}:channel", "--url", UNREACHABLE, "--connect-timeout", "1"]
    ran = await run_command(*args, *workers, env=env, cwd=ROOT)
    assert ran.code == Exit.UNREACHABLE, ran.stderr
    assert "not every queue was consuming after 1 s (--connect-timeout)" in ran.stderr
    assert "127.0.0.1:1" in ran.stderr
    assert "secret" not in ran.stderr
    if workers:
        assert re.search(r"worker \d \(pid \d+\) exited with 3; stopping every worker", ran.stderr)


@pytest.mark.real_broker
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "0"], "--workers: must be at least 1"),
        (["--grace", "-1"], "--grace: must be a finite number"),
        (["--loop", "trio"], "invalid choice: 'trio'"),
    ],
)
async def test_bad_options_exit_2(args: list[str], says: str) -> None:
    ran = await run_command("run", f"{SERVICE}:channel", *args, cwd=ROOT)
    assert ran.code == Exit.USAGE
    assert says in ran.stderr


@pytest.mark.real_broker
async def test_loop_uvloop(launch: Launch, names, record: Record) -> None:
    args = ("run", f"{SERVICE}:channel", "--loop", "uvloop")
    env = _env(names.queue("run"), record)
    if not HAS_UVLOOP:
        ran = await run_command(*args, env=command_env(**env), cwd=ROOT)
        assert ran.code == Exit.USAGE
        assert "--loop uvloop needs uvloop" in ran.stderr
        return
    service = await launch(*args, **env)
    assert (await service.line(r"loop (\w+)\)")).group(1) == "uvloop"
