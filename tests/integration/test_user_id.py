"""A message published by another user keeps being retried and dead-lettered.

RabbitMQ validates ``user_id``: a publish whose ``user_id`` is not the connection's user is
refused. A retry copy of another user's message therefore moves that ``user_id`` into the
``x-eventrabbit-user-id`` header instead of being refused in a loop.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiormq
import pytest
from yarl import URL

from eventrabbit import RetryConfig
from tests.conftest import Services
from tests.helpers import collect, rabbitmqctl

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
    services: Services, other_user_url: str, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    calls: list[int] = []
    events, handle = services.build(
        retry_config=RetryConfig(max_retries=1, retry_delay_seconds=0.2)
    )

    @events.consumer(action="ALWAYS_FAILS")
    async def always_fails(n: int) -> None:
        calls.append(n)
        raise RuntimeError("no")

    target = services.target("user")
    queue = target.queue_name
    await services.consume(handle, target)
    other = await aiormq.connect(other_user_url)
    try:
        channel = await other.channel()
        user = URL(other_user_url).user
        await channel.basic_publish(
            b'{"action": "ALWAYS_FAILS", "data": {"n": 1}}',
            routing_key=queue,
            properties=aiormq.spec.Basic.Properties(user_id=user),
        )
        [dead] = await collect(amqp_channel, queue + ".dlq", 1)
    finally:
        await other.close()
    await handle.close()
    assert calls == [1, 1]  # the first attempt and one retry, no refusal loop
    headers = dead.header.properties.headers or {}
    assert headers["x-eventrabbit-user-id"] == user
    assert headers["x-retry-count"] == 1
    assert dead.header.properties.user_id is None
