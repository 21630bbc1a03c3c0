"""Checkpoints: where a follower of a stream resumes.

Theory of operation
-------------------
A checkpoint is the highest offset at and below which every event was handled. A follower
loads it on start and resumes at checkpoint + 1; while it runs it saves it now and then and
when it stops. Three stores:

- :class:`MemoryCheckpoints` — a dict, for tests and for a projection that lives in memory.
- :class:`FileCheckpoints` — one small JSON file per checkpoint, replaced atomically (write a
  temporary file, fsync it, rename over the old one, fsync the directory): a crash leaves the
  old checkpoint or the new one, never half of one.
- :class:`ExternalCheckpoints` — the projection's own database keeps the offset. The handler
  saves :func:`~eventrabbit.replay_context.replay_offset` in the transaction that updates the
  projection, and the store only *loads* it back; so the projection and its checkpoint commit
  together and an event is applied exactly once, even after a crash.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import orjson

from .checks import check_name
from .errors import ConfigurationError


@runtime_checkable
class CheckpointStore(Protocol):
    """Where named checkpoints are kept."""

    async def load(self, name: str) -> int | None:
        """The checkpoint ``name``; ``None`` if there is none yet."""

    async def save(self, name: str, offset: int) -> None:
        """Make ``offset`` the checkpoint ``name``."""


class MemoryCheckpoints:
    """Checkpoints in a dict (``offsets``); gone with the process."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    async def load(self, name: str) -> int | None:
        return self.offsets.get(name)

    async def save(self, name: str, offset: int) -> None:
        self.offsets[name] = offset


class FileCheckpoints:
    """Checkpoints as files ``<directory>/<name>.checkpoint`` holding ``{"offset": n}``.

    :param directory: made if missing.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        """The file of checkpoint ``name``.

        :raises ConfigurationError: a name that is not a plain file name.
        """
        check_name("checkpoint", name)
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ConfigurationError(f"checkpoint {name!r} must be a plain file name")
        return self.directory / f"{name}.checkpoint"

    async def load(self, name: str) -> int | None:
        return await asyncio.to_thread(self._load, self.path(name))

    async def save(self, name: str, offset: int) -> None:
        await asyncio.to_thread(self._save, self.path(name), offset)

    @staticmethod
    def _load(path: Path) -> int | None:
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        offset = data.get("offset") if isinstance(data, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < -1:
            raise ConfigurationError(f"checkpoint file {path.name} does not hold an offset")
        return offset

    @staticmethod
    def _save(path: Path, offset: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(orjson.dumps({"offset": offset}))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename is durable only once the directory entry is.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class ExternalCheckpoints:
    """Checkpoints the handlers keep themselves, in the projection's own database.

    :param load: reads the checkpoint ``name`` (e.g. ``SELECT offset FROM checkpoints WHERE
        name = $1``); ``None`` if there is none.
    """

    def __init__(self, load: Callable[[str], Awaitable[int | None]]) -> None:
        self._load = load

    async def load(self, name: str) -> int | None:
        return await self._load(name)

    async def save(self, name: str, offset: int) -> None:
        """Nothing: the handler saved it in its own transaction."""
