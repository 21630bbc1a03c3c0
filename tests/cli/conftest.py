"""Fixtures of the command-line tests: each command runs as a subprocess (``python -m
eventrabbit``) against the real broker, as an operator would run it.

The in-memory broker lives inside one process, so these tests are ``real_broker`` only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import BROKER_URL

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a command may take before the test fails (a deadline, not a speed goal).
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Ran:
    """A finished command: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str


def command_env(url: str = BROKER_URL, **extra: str) -> dict[str, str]:
    """The environment of a command: this checkout importable, ``$EVENTRABBIT_URL`` set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["EVENTRABBIT_URL"] = url
    env.update(extra)
    return env


def argv(*args: str) -> list[str]:
    """``python -m eventrabbit ARGS``, with this interpreter."""
    return [sys.executable, "-m", "eventrabbit", *args]


async def run_command(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = COMMAND_TIMEOUT,  # noqa: ASYNC109 - a deadline
) -> Ran:
    """Run ``eventrabbit ARGS`` to its end without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        *argv(*args),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or command_env(),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


@pytest.fixture
def cli() -> type[CLI]:
    """The command runner (``await cli.run("publish", ...)``)."""
    return CLI


class CLI:
    """Namespace for the runner, so tests read ``await cli.run(...)``."""

    run = staticmethod(run_command)
    env = staticmethod(command_env)
    argv = staticmethod(argv)
