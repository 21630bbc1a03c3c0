"""The ``run --workers N`` supervisor: N worker processes, each the service with connections of
its own, restarted when they die, drained together on SIGTERM or SIGINT.

Theory of operation
-------------------
Each worker is ``python -m eventrabbit run`` again, without ``--workers``, with the same
options, its number, and one end of a socket pair to the supervisor. The worker writes
``ready`` on it once every queue consumes; the supervisor reads end-of-file when the worker
is gone — and the worker does when the supervisor is, so a killed supervisor leaves no worker
behind (each drains and exits). Workers share the supervisor's stderr, so their log lines
(JSON ones too) pass through untouched. What to do when a worker ends, how long to wait before
a restart and the exit code are :mod:`.run_supervision`'s pure decisions. On SIGTERM or SIGINT
the supervisor forwards SIGTERM to every worker, waits up to the grace time plus a margin, and
kills what still runs; restarts still waiting are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

from .exits import Exit
from .run_logging import log
from .run_options import Options, worker_argv
from .run_service import READY
from .run_supervision import (
    Action,
    Ending,
    decide,
    describe,
    exit_code,
    next_streak,
    restart_delay,
    stop_deadline,
)
from .target import Target


def supervise(target: Target, options: Options) -> int:
    """Run ``options.workers`` workers of the service until a signal stops them; the exit code."""
    return asyncio.run(Supervisor(target, options).run())


@dataclass(eq=False)
class _Slot:
    """One worker's place: the process that fills it now."""

    number: int
    process: asyncio.subprocess.Process | None = None
    killed: bool = False
    ready_once: bool = False


class Supervisor:
    """Starts, watches, restarts and stops the worker processes."""

    def __init__(self, target: Target, options: Options) -> None:
        assert options.workers is not None
        self.options = options
        self.queues = ", ".join(channel.queue_name for channel in target.channels)
        self.grace = options.grace if options.grace is not None else _grace_of(target)
        self.slots = [_Slot(number) for number in range(1, options.workers + 1)]
        self.stop = asyncio.Event()
        self.started = False  # some worker became ready: the service runs
        self.failed = False
        self.gave_up: Exit | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info("starting %d workers for %s", len(self.slots), self.queues)
        keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]
        await self.stop.wait()
        live = [slot for slot in self.slots if _alive(slot)]
        for slot in live:
            _signal(slot, signal.SIGTERM)
        _, late = await asyncio.wait(keepers, timeout=stop_deadline(self.grace))
        if late:
            for slot in self.slots:
                if _alive(slot):
                    log.error("worker %d did not stop in time; killing it", slot.number)
                    slot.killed = True
                    _signal(slot, signal.SIGKILL)
            await asyncio.gather(*late)
        code = exit_code(self.failed, self.gave_up)
        outcome = "a worker failed" if code == Exit.REMOTE_FAILED else f"exit {int(code)}"
        log.info("stopped (%s)", "every worker drained" if code == Exit.OK else outcome)
        return int(code)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            log.info("%s received; already stopping", sig.name)
            return
        log.info(
            "%s received; stopping %d workers (grace %g s)", sig.name, len(self.slots), self.grace
        )
        self.stop.set()

    async def _keep(self, slot: _Slot) -> None:
        """Keep ``slot`` filled with a worker until the supervisor stops."""
        loop = asyncio.get_running_loop()
        streak = 0
        while not self.stop.is_set():
            began = loop.time()
            returncode = await self._one_worker(slot)
            ending = Ending(returncode, self.stop.is_set(), slot.killed, self.started)
            decision = decide(ending)
            self.failed = self.failed or decision.failed
            pid = slot.process.pid if slot.process else 0
            how = describe(returncode)
            if decision.action is Action.NONE:
                if decision.failed:
                    log.error("worker %d (pid %d) %s while stopping", slot.number, pid, how)
                return
            if decision.action is Action.GIVE_UP:
                log.error("worker %d (pid %d) %s; stopping every worker", slot.number, pid, how)
                self.gave_up = self.gave_up or decision.code
                self.stop.set()
                return
            streak = next_streak(streak, decision.failed, loop.time() - began)
            delay = restart_delay(streak)
            log.warning(
                "worker %d (pid %d) %s; restarting it in %g s",
                slot.number,
                pid,
                how,
                delay,
                extra={"event": "worker-died", "returncode": returncode},
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stop.wait()

    async def _one_worker(self, slot: _Slot) -> int:
        """Start a worker in ``slot``, follow it until it ends; its return code."""
        ours, theirs = socket.socketpair()
        with ours:
            try:
                argv = worker_argv(self.options, slot.number, theirs.fileno(), sys.executable)
                slot.killed = False
                slot.process = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),)
                )
            finally:
                theirs.close()  # the worker's copy is the only one: EOF when it is gone
            if self.stop.is_set():
                _signal(slot, signal.SIGTERM)  # the stop came while it was starting
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            try:
                while line := await reader.readline():
                    if line == READY:
                        self._ready(slot)
                return await slot.process.wait()
            finally:
                writer.close()

    def _ready(self, slot: _Slot) -> None:
        assert slot.process is not None
        pid = slot.process.pid
        if slot.ready_once:
            log.info("worker %d ready again (pid %d)", slot.number, pid)
            return
        slot.ready_once = True
        log.info("worker %d ready (pid %d)", slot.number, pid)
        self.started = True
        if all(s.ready_once for s in self.slots):
            pids = [s.process.pid for s in self.slots if s.process is not None]
            log.info(
                "ready: %d workers consuming %s (pids %s)",
                len(self.slots),
                self.queues,
                ", ".join(map(str, pids)),
                extra={"event": "ready", "pids": pids},
            )


def _grace_of(target: Target) -> float:
    """The longest grace time among the channels' queue configs."""
    default = target.handle.queue_config
    return max((c.queue_config or default).grace_timeout for c in target.channels)


def _alive(slot: _Slot) -> bool:
    return slot.process is not None and slot.process.returncode is None


def _signal(slot: _Slot, sig: signal.Signals) -> None:
    if slot.process is not None and slot.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            slot.process.send_signal(sig)
