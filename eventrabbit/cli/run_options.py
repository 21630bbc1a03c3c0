"""The options of ``eventrabbit run``, and the command line that starts one worker with them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

#: ``--loop`` choices: ``auto`` is uvloop when it is installed, else asyncio's own loop.
LOOPS = ("auto", "asyncio", "uvloop")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
#: Seconds ``run`` waits for every queue to consume on start before it gives up (exit 3).
DEFAULT_CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Options:
    """What ``eventrabbit run`` was asked to do.

    :param grace: seconds in-flight handlers get on stop; ``None``: each queue's
        ``QueueConfig.grace_timeout``.
    :param connect_timeout: seconds until every queue must consume on start; ``0``: no limit.
    :param workers: ``None`` runs the service in this process; a number runs that many
        supervised worker processes.
    :param worker: set in a worker process: its number (1 to N), for its log lines.
    :param supervisor_fd: set in a worker process: its end of the socket to the supervisor.
    """

    target: str
    handle: str | None = None
    grace: float | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    loop: str = "auto"
    log_level: str = "info"
    log_format: str = "text"
    workers: int | None = None
    worker: int | None = None
    supervisor_fd: int | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        """The options of a parsed ``run`` command line (``--json`` means JSON logs)."""
        return cls(
            target=args.target,
            handle=args.handle,
            grace=args.grace,
            connect_timeout=args.connect_timeout,
            loop=args.loop,
            log_level=args.log_level,
            log_format="json" if args.json else args.log_format,
            workers=args.workers,
            worker=args.worker_index,
            supervisor_fd=args.supervisor_fd,
        )


def worker_argv(options: Options, index: int, fd: int, executable: str) -> list[str]:
    """The command line of worker ``index``: this ``run`` without ``--workers``, told its number
    and its socket to the supervisor (``fd``, passed to the child open)."""
    argv = [executable, "-m", "eventrabbit", "run", options.target]
    if options.handle is not None:
        argv += ["--handle", options.handle]
    if options.grace is not None:
        argv += ["--grace", repr(options.grace)]
    argv += [
        "--connect-timeout",
        repr(options.connect_timeout),
        "--loop",
        options.loop,
        "--log-level",
        options.log_level,
        "--log-format",
        options.log_format,
        "--worker-index",
        str(index),
        "--supervisor-fd",
        str(fd),
    ]
    return argv
