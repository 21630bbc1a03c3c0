"""The in-memory broker routes as RabbitMQ 3.10 does: played on both, compared
(:mod:`tests.differential`)."""

from __future__ import annotations

import pytest

from tests.differential import Side, compare

pytestmark = pytest.mark.differential


async def default_exchange_and_returns(side: Side) -> None:
    await side.queue("q")
    await side.publish("", side.name("q"), b"to q")
    await side.publish("", side.name("nowhere"), b"lost", mandatory=True)
    await side.publish("", side.name("nowhere"), b"dropped")
    await side.drain("q")


async def double_bindings(side: Side) -> None:
    await side.exchange("x", "topic")
    await side.queue("q")
    await side.bind("q", "x", "a.*")
    await side.bind("q", "x", "#")
    await side.bind("q", "x", "a.*")  # the same binding twice
    await side.publish("x", "a.b", b"once", headers={"h": 1})
    await side.publish("x", "c", b"once too")
    await side.drain("q")


@pytest.mark.parametrize("case", [default_exchange_and_returns, double_bindings])
async def test_case(case) -> None:  # type: ignore[no-untyped-def]
    rabbit, memory = await compare(case)
    assert memory == rabbit
