"""Running a coroutine on the standard asyncio loop or, when asked and installed, uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when asked for, else ``None`` (asyncio's default loop).

    :raises SystemExit: ``--uvloop`` without uvloop installed.
    """
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        raise SystemExit("--uvloop needs uvloop: pip install uvloop") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(coroutine: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    """Run ``coroutine`` to completion on a fresh loop of the chosen kind."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(coroutine)


def loop_name() -> str:
    """Which event loop is running: ``asyncio`` or ``uvloop``."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
