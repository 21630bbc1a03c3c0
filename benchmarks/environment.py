"""What the report says about where and how it was measured."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import loop
from .broker import admin
from .settings import PREFETCH, Settings

#: Packages whose versions the report shows.
PACKAGES = ("eventrabbit", "aiormq", "pamqp", "orjson", "aio-pika", "faststream", "uvloop")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model: Linux's ``model name``, else what ``platform.processor()`` says.

    Ratios are compared across runs, and two machines with as many cores can differ by more
    than a library does, so the report names the model when the system tells it.
    """
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        # Not Linux (or no procfs): platform has the best guess there is.
        lines = []
    for line in lines:
        name, sep, value = line.partition(":")
        if sep and name.strip() == "model name" and value.strip():
            return " ".join(value.split())
    return platform.processor() or None


async def describe(settings: Settings) -> dict[str, Any]:
    """Date, machine, Python, library and broker versions, sizes and the loop that runs."""
    async with admin(settings.url) as adm:
        broker = adm.broker_version
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "processor": platform.machine(),
            "cpu_model": cpu_model(),
            "load_average_at_start": _load(),
        },
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "loop": loop.loop_name(),
        "broker": broker,
        "versions": {name: _version(name) for name in PACKAGES},
        "sizes": {
            "consume_n": settings.consume_n,
            "publish_n": settings.publish_n,
            "rpc_n": settings.rpc_n,
            "memory_n": settings.memory_n,
            "prefetch": PREFETCH,
        },
        "rounds": settings.rounds,
        "quick": settings.quick,
        "clients": list(settings.clients),
        "memory_clients": list(settings.memory_clients),
    }
