"""A message published by another user keeps being retried and dead-lettered.

RabbitMQ validates ``user_id``: a publish whose ``user_id`` is not the connection's user is
refused. A retry copy of another user's message therefore moves that ``user_id`` into the
``x-eventrabbit-user-id`` header instead of being refused in a loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiormq
import pytest
from yarl import URL

from eventrabbit import RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel
from tests.conftest import Names
from tests.helpers import consumer_count, get_one, rabbitmqctl, wait_for

pytestmark = pytest.mark.real_broker  # needs a second broker user (rabbitmqctl)


@pytest.fixture
async def other_user_url(broker_url: str) -> AsyncIterator[str]:
    user, password = f"evr-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await rabbitmqctl("add_user", user, password)
    try:
        await rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield str(URL(broker_url).with_user(user).with_password(password))
    finally:
        await rabbitmqctl("delete_user", user)


async def test_another_users_message_is_retried_and_dead_lettered(
    broker_url: str, other_user_url: str, names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    queue = names.queue("user")
    calls: list[int] = []
    events, handle = build_event_dependencies(
        broker_url, retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0.2)
    )

    @events.consumer(action="ALWAYS_FAILS")
    async def always_fails(n: int) -> None:
        calls.append(n)
        raise RuntimeError("no")

    task = asyncio.create_task(handle.consume(ConsumeChannel(url=broker_url, queue_name=queue)))
    other = await aiormq.connect(other_user_url)
    try:
        await wait_for(lambda: consumer_count(amqp_channel, queue), message="consuming")
        channel = await other.channel()
        user = URL(other_user_url).user
        await channel.basic_publish(
            b'{"action": "ALWAYS_FAILS", "data": {"n": 1}}',
            routing_key=queue,
            properties=aiormq.spec.Basic.Properties(user_id=user),
        )
        dead = await get_one(amqp_channel, queue + ".dlq", timeout=10)
    finally:
        await other.close()
        await handle.close()
    assert task.done()
    assert calls == [1, 1]  # the first attempt and one retry, no refusal loop
    headers = dead.header.properties.headers or {}
    assert headers["x-eventrabbit-user-id"] == user
    assert headers["x-retry-count"] == 1
    assert dead.header.properties.user_id is None
