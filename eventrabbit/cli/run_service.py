"""One service process of ``eventrabbit run``: consume every channel, say when ready, stop
gracefully on a signal.

Theory of operation
-------------------
Every channel gets its ``handle.consume`` task; :meth:`Handle.ready` says when all consume.
Until then the first connection is bounded by ``--connect-timeout`` (``consume`` itself retries
an unreachable broker forever, which a command on its first start should not: exit 3). Once
ready, a lost connection is the library's business: it reconnects with backoff. The process then
waits for SIGTERM or SIGINT (or, in a worker, for its supervisor's socket to close), and
``handle.close(timeout=grace)`` stops taking deliveries, lets the handlers in flight finish
and acks them; what does not finish in time is left unacked, so the broker redelivers it.
A ``consume`` that ends by itself ended with an error that reconnecting cannot cure (a
topology clash, a refused permission): the others are stopped gracefully too, and the command
exits with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

from eventrabbit import TopologyError

from .exits import CommandError, Exit
from .run_logging import log
from .run_options import Options
from .target import Target

#: The line a worker sends its supervisor once every queue consumes.
READY = b"ready\n"
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str) -> tuple[LoopFactory | None, str]:
    """The event loop factory for ``--loop`` (``None``: asyncio's own), and the loop's name.

    :raises CommandError: ``uvloop`` asked for but not installed.
    """
    if choice == "asyncio":
        return None, "asyncio"
    try:
        uvloop: Any = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise CommandError(
                "--loop uvloop needs uvloop: pip install 'eventrabbit[uvloop]'", Exit.USAGE
            ) from None
        return None, "asyncio"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, "uvloop"


def run(target: Target, options: Options) -> int:
    """Run the service until a signal stops it; its exit code."""
    factory, loop_name = loop_factory(options.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(target, options, loop_name))


async def _serve(target: Target, options: Options, loop_name: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s received; already stopping", sig.name)
            return
        grace = "each queue's grace time" if options.grace is None else f"{options.grace:g} s"
        log.info("%s received; stopping (in-flight handlers get %s)", sig.name, grace)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    handle, channels = target.handle, target.channels
    tasks = [asyncio.create_task(handle.consume(channel)) for channel in channels]
    try:
        async with _supervisor(options.supervisor_fd) as supervisor:
            # What ends the service: a signal, its supervisor gone, or a consume that ended.
            ends: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
            if supervisor is not None:
                ends.append(asyncio.ensure_future(_until_closed(supervisor[0])))
            try:
                if await _started(target, options, ends):
                    if supervisor is not None:
                        supervisor[1].write(READY)
                    else:
                        _announce_ready(target, loop_name)
                    await asyncio.wait([*ends, *tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for end in ends:
                    end.cancel()
            gone = len(ends) > 1 and ends[1].done() and not ends[1].cancelled()
            if gone and not stop.is_set():
                log.warning("the supervisor is gone; stopping")
            _raise_failure(tasks)
            return Exit.OK
    finally:
        await handle.close(timeout=options.grace)
        await asyncio.gather(*tasks, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")


def _announce_ready(target: Target, loop_name: str) -> None:
    queues = [channel.queue_name for channel in target.channels]
    log.info(
        "ready: consuming %s (pid %d, loop %s)",
        ", ".join(queues),
        os.getpid(),
        loop_name,
        extra={"event": "ready", "queues": queues, "loop": loop_name},
    )


async def _started(target: Target, options: Options, ends: list[asyncio.Future[Any]]) -> bool:
    """Wait until every queue consumes (``True``), or until one of ``ends`` (a stop signal, the
    supervisor gone) came first (``False``).

    :raises CommandError: the queues did not consume within ``--connect-timeout`` (exit 3),
        or a topology error ended a ``consume`` (exit 2).
    """
    limit = options.connect_timeout or None
    ready = asyncio.ensure_future(target.handle.ready(*target.channels, timeout=limit))
    try:
        await asyncio.wait([ready, *ends], return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not ready.done() or ready.cancelled():
        return False
    error = ready.exception()
    if isinstance(error, TimeoutError):
        errors = [f"{s.queue}: {s.last_error}" for s in target.handle.status() if s.last_error]
        why = "; ".join(errors) or "no answer"
        raise CommandError(
            f"not every queue was consuming after {options.connect_timeout:g} s "
            f"(--connect-timeout): {why}",
            Exit.UNREACHABLE,
        )
    if error is not None:
        raise _mapped(error)
    return True


def _raise_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Raise what ended a ``consume`` by itself, if one did."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            raise _mapped(error)


def _mapped(error: BaseException) -> BaseException:
    # A topology clash is a configuration error of the service (exits.code_of would say 1).
    if isinstance(error, TopologyError):
        return CommandError(str(error), Exit.USAGE)
    return error


Link = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def _supervisor(fd: int | None) -> AsyncIterator[Link | None]:
    """A worker's link to its supervisor (``None`` when run alone): write ``READY`` on it;
    it reads end-of-file when the supervisor is gone."""
    if fd is None:
        yield None
        return
    os.set_inheritable(fd, False)  # the service's own child processes must not hold it open
    link: Link = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    try:
        yield link
    finally:
        link[1].close()


async def _until_closed(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass
