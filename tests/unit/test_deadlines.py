"""eventrabbit.deadlines.Deadlines: many waits' time limits on one timer — without a broker,
on the event loop's own clock (the waits are futures that never resolve unless told)."""

from __future__ import annotations

import asyncio

import pytest

from eventrabbit.deadlines import Deadlines


async def _wait(deadlines: Deadlines, seconds: float, done: asyncio.Future[None]) -> str:
    """What a publish does: start, wait, end; says how the wait ended."""
    task = asyncio.current_task()
    assert task is not None
    ticket = deadlines.start(seconds, task)
    try:
        await done
    except asyncio.CancelledError:
        if deadlines.end(ticket):
            if task.uncancel():
                raise
            return "expired"
        raise
    deadlines.end(ticket)
    return "done"


async def test_waits_that_end_in_time_are_not_cancelled() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    futures = [asyncio.get_running_loop().create_future() for _ in range(3)]
    tasks = [asyncio.create_task(_wait(deadlines, 0.2, f)) for f in futures]
    await asyncio.sleep(0)
    assert deadlines.waiting == 3
    for future in futures:
        future.set_result(None)
    assert await asyncio.gather(*tasks) == ["done"] * 3
    assert deadlines.waiting == 0
    await asyncio.sleep(0.3)  # past the deadline: the timer fires and finds nothing to do
    assert all(not t.cancelled() for t in tasks)


@pytest.mark.parametrize(
    ("limits", "ended", "expected"),
    [
        # each wait's limit (s), which waits are told to end at once, how each ends
        ([0.05], [], ["expired"]),
        ([0.05, 0.3], [1], ["expired", "done"]),
        ([0.3, 0.05], [0], ["done", "expired"]),  # a nearer deadline re-arms the timer
        ([0.05, 0.05, 0.08], [], ["expired", "expired", "expired"]),
        ([0.08, 0.05, 0.3], [2], ["expired", "expired", "done"]),  # the timer re-arms
    ],
)
async def test_each_wait_expires_at_its_own_deadline(
    limits: list[float], ended: list[int], expected: list[str]
) -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    futures = [loop.create_future() for _ in limits]
    started = loop.time()
    tasks = [
        asyncio.create_task(_wait(deadlines, s, f)) for s, f in zip(limits, futures, strict=True)
    ]
    await asyncio.sleep(0)
    for index in ended:
        futures[index].set_result(None)
    results = []
    for task, limit in zip(tasks, limits, strict=True):
        results.append(await task)
        if results[-1] == "expired":
            assert loop.time() - started >= limit - 0.001  # never before its deadline
    assert results == expected
    assert deadlines.waiting == 0


async def test_a_cancellation_from_elsewhere_goes_on_even_past_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    task = asyncio.create_task(_wait(deadlines, 0.0, loop.create_future()))
    await asyncio.sleep(0)
    # The caller's own cancellation and the deadline's (due at once) reach the task together:
    # whichever comes first, the task is cancelled, not timed out.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_on_reuses_the_running_loops_deadlines() -> None:
    made = Deadlines.on(None)
    assert Deadlines.on(made) is made
    other = Deadlines(asyncio.new_event_loop())
    try:
        assert Deadlines.on(other) is not other  # made on another loop: not used here
    finally:
        other._loop.close()
