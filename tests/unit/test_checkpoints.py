"""Checkpoint stores: the memory and file ones, and the one that reads the user's database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventrabbit import (
    CheckpointStore,
    ConfigurationError,
    ExternalCheckpoints,
    FileCheckpoints,
    MemoryCheckpoints,
)
from eventrabbit.replay_reader import Checkpoint


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    return MemoryCheckpoints() if request.param == "memory" else FileCheckpoints(tmp_path / "cp")


async def test_a_checkpoint_is_none_until_saved_then_the_last_saved(store: CheckpointStore):
    assert isinstance(store, CheckpointStore)
    assert await store.load("a") is None
    await store.save("a", 0)
    await store.save("a", 41)
    await store.save("b", 7)
    assert (await store.load("a"), await store.load("b")) == (41, 7)


async def test_a_file_checkpoint_outlives_its_store_and_leaves_one_file(tmp_path: Path):
    await FileCheckpoints(tmp_path).save("projection", 10)
    await FileCheckpoints(tmp_path).save("projection", 11)
    assert await FileCheckpoints(tmp_path).load("projection") == 11
    assert os.listdir(tmp_path) == ["projection.checkpoint"]  # no temporary file left


async def test_a_file_that_holds_no_offset_is_an_error_not_a_fresh_start(tmp_path: Path):
    store = FileCheckpoints(tmp_path)
    store.path("p").write_bytes(b'{"offset": "12"}')
    with pytest.raises(ConfigurationError, match="does not hold an offset"):
        await store.load("p")


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "a\\b"])
def test_a_checkpoint_name_must_be_a_plain_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigurationError):
        FileCheckpoints(tmp_path).path(name)


async def test_an_external_store_loads_from_the_users_database_and_saves_nothing() -> None:
    database = {"projection": 99}

    async def load(name: str) -> int | None:
        return database.get(name)

    store = ExternalCheckpoints(load)
    await store.save("projection", 5)  # the handler saved it in its own transaction
    assert (await store.load("projection"), await store.load("other")) == (99, None)


@pytest.mark.parametrize(
    ("saved", "handled", "due", "written"),
    [
        (None, 0, True, 0),  # the first: always
        (9, 9, False, None),  # not moved: nothing written
        (9, 10, True, None),  # due: only every 10
        (9, 19, True, 19),
        (9, 10, False, 10),  # at the end: whatever moved
    ],
)
async def test_when_a_follower_writes_its_checkpoint(
    saved: int | None, handled: int, due: bool, written: int | None
) -> None:
    store = MemoryCheckpoints()
    checkpoint = Checkpoint("p", store, every=10, saved=saved)
    await checkpoint.save(handled, due=due)
    assert store.offsets.get("p") == written
    assert checkpoint.saved == (saved if written is None else written)
