"""``eventrabbit call``: a subprocess calls a service running in the test process and prints
its result; an error reply, a request nobody answers, one no queue receives and a broker that
cannot be reached each end with their exit code."""

from __future__ import annotations

import aiormq.abc
import orjson
import pytest

from eventrabbit import RetryConfig
from tests.cli.conftest import CLI
from tests.conftest import Names, Services

pytestmark = pytest.mark.real_broker


@pytest.fixture
async def calculator(services: Services) -> str:
    """A service answering ``add`` and failing ``fail`` for good (no retries); its queue."""
    events, handle = services.build(retry_config=RetryConfig(max_retries=0))

    @events.consumer("add")
    async def add(a: int, b: int) -> int:
        return a + b

    @events.consumer("fail")
    async def fail(order: str) -> None:
        raise LookupError(f"no order {order}")

    target = services.target("calc")
    await services.consume(handle, target)
    return target.queue_name


async def test_call_prints_the_result(cli: type[CLI], calculator: str) -> None:
    ran = await cli.run("call", "add", '{"a": 2, "b": 3}', "--key", calculator)

    assert ran.code == 0, ran.stderr
    assert orjson.loads(ran.stdout) == 5


async def test_an_error_reply_exits_1_and_says_why(cli: type[CLI], calculator: str) -> None:
    ran = await cli.run("call", "fail", '{"order": "A-1"}', "--key", calculator, "--json")

    assert ran.code == 1
    assert "the handler of 'fail' failed: LookupError: no order A-1" in ran.stderr
    assert orjson.loads(ran.stdout) == {"error": {"type": "LookupError", "message": "no order A-1"}}


async def test_no_reply_in_time_exits_3_and_no_queue_exits_1(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    idle = names.queue()  # exists, but nobody consumes it
    await amqp_channel.queue_declare(idle)

    ran = await cli.run("call", "add", '{"a": 1, "b": 1}', "--key", idle, "--timeout", "0.5")
    assert ran.code == 3
    assert "no reply to 'add' within 0.5 s" in ran.stderr

    ran = await cli.run("call", "add", '{"a": 1, "b": 1}', "--key", idle + ".nobody")
    assert ran.code == 1
    assert "no queue receives 'add' requests" in ran.stderr
