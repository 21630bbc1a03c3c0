"""What ``publish`` and ``call`` take from the command line and stdin, and the exit code of
what they fail with.

Theory of operation
-------------------
An event's data is a JSON *object*: a consumer's handler takes its keys as keyword arguments,
and a body whose ``data`` is anything else is dead-lettered unread, so anything else is
refused here (exit 2) before a message is sent. stdin is read in a worker thread, chunk by
chunk, so a slow writer never blocks the event loop (the connection's heartbeats and the
confirms of what is in flight go on while it waits).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from eventrabbit import BrokerUnavailable, PublishError

from .exits import CommandError, Exit, code_of

#: Bytes read from stdin at a time.
CHUNK = 1 << 16


def parse_object(text: str | bytes, where: str) -> dict[str, Any]:
    """``text`` as a JSON object.

    :param where: what the text is, for the error (``DATA``, ``line 3``).
    :raises CommandError: (``USAGE``) not JSON, or JSON but not an object.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        at = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        raise CommandError(f"{where} is not valid JSON ({exc.msg} at {at})", Exit.USAGE) from None
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise CommandError(
            f"{where} must be a JSON object (a handler takes its keys as arguments), not {kind}",
            Exit.USAGE,
        )
    return value


def header(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE`` as a header (the value a string, ``=`` allowed in it)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds more than 0, got {text!r}")
    return value


def failure_code(exc: BaseException) -> Exit:
    """The exit code of a publish or request that failed.

    The library wraps a connection that could not be made (or a confirm that never came) in
    the publish error; that is the broker being unreachable (3), not the remote side failing.
    """
    if isinstance(exc, PublishError) and isinstance(
        exc.__cause__, BrokerUnavailable | TimeoutError
    ):
        return Exit.UNREACHABLE
    return code_of(exc) or Exit.REMOTE_FAILED


async def read_lines(fd: int) -> AsyncGenerator[tuple[int, bytes], None]:
    """The lines of file descriptor ``fd``, numbered from 1, without their line ends."""
    number, pending = 0, b""
    while chunk := await asyncio.to_thread(os.read, fd, CHUNK):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            number += 1
            yield number, line.removesuffix(b"\r")
    if pending:
        yield number + 1, pending.removesuffix(b"\r")
