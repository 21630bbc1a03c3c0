"""Permissions the broker refuses (403 ACCESS_REFUSED) end ``consume`` at once with a
``TopologyError`` naming the queue or exchange and the permission — never a retry loop.

Each test makes a vhost and a user of its own (rabbitmqctl), with every permission but the one
under test, and deletes both afterwards. Inside the vhost the names need not be unique.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import pytest
from yarl import URL

import eventrabbit
from eventrabbit.common import ConsumeChannel, RetryConfig
from tests.conftest import Services
from tests.helpers import BROKER_URL, rabbitmqctl

pytestmark = pytest.mark.real_broker  # users, vhosts and permissions: rabbitmqctl

#: Seconds a refused consume may take to end: a deadline for the failure to show, not a speed
#: goal (a retry loop would never end).
FAIL_FAST_TIMEOUT = 10.0
#: Every permission RabbitMQ has, as a regular expression.
ALL = ".*"
QUEUE, EXCHANGE = "q", "ex"

Restricted = Callable[..., Awaitable[str]]


def _but(name: str) -> str:
    """Every resource but ``name``."""
    return f"^(?!{re.escape(name)}$).*"


@pytest.fixture
async def restricted() -> AsyncIterator[Restricted]:
    """Makes a vhost and a user with the given permissions; returns the user's URL.

    ``configure``/``write``/``read`` are RabbitMQ's permission regexes; ``granted=False``
    gives the user no permissions in the vhost at all.
    """
    made: list[tuple[str, str]] = []

    async def make(
        configure: str = ALL, write: str = ALL, read: str = ALL, *, granted: bool = True
    ) -> str:
        tag = uuid.uuid4().hex[:8]
        vhost, user, password = f"test.perm.{tag}", f"test-perm-{tag}", f"pw-{tag}"
        await rabbitmqctl("add_vhost", vhost)
        await rabbitmqctl("add_user", user, password)
        made.append((vhost, user))
        if granted:
            await rabbitmqctl("set_permissions", "-p", vhost, user, configure, write, read)
        url = URL(BROKER_URL).with_user(user).with_password(password)
        return str(url.with_path("/" + quote(vhost, safe=""), encoded=True))

    try:
        yield make
    finally:
        for vhost, user in made:
            await rabbitmqctl("delete_user", user)
            await rabbitmqctl("delete_vhost", vhost)


async def refused_consume(
    services: Services, url: str, retry: RetryConfig | None = None, **channel: object
) -> eventrabbit.TopologyError:
    """Consume ``q`` (bound to ``ex`` unless told) as the restricted user; the TopologyError
    that ended it."""
    options: dict[str, object] = {"exchange_name": EXCHANGE, "exchange_type": "fanout"}
    options.update(channel)
    _, handle = services.build(url, retry_config=retry)
    target = ConsumeChannel(url, QUEUE, **options)  # type: ignore[arg-type]
    with pytest.raises(eventrabbit.TopologyError) as info:
        await services.consume(handle, target, timeout=FAIL_FAST_TIMEOUT)
    [status] = handle.status()
    assert status.ended
    assert not status.consuming
    assert status.reconnects == 0
    return info.value


def assert_names(error: eventrabbit.TopologyError, permission: str, kind: str, name: str) -> None:
    text = str(error)
    assert f"{permission} permission on {kind} {name!r}" in text, text
    assert repr(QUEUE) in text
    password = re.search(r"pw-[0-9a-f]{8}", text)
    assert password is None, "the refusal quotes no password"


async def test_no_configure_permission_on_the_exchange(
    restricted: Restricted, services: Services
) -> None:
    url = await restricted(configure=_but(EXCHANGE))
    error = await refused_consume(services, url)
    assert_names(error, "configure", "exchange", EXCHANGE)
    assert error.exchange == EXCHANGE


async def test_no_configure_permission_on_the_queue(
    restricted: Restricted, services: Services
) -> None:
    url = await restricted(configure=_but(QUEUE))
    error = await refused_consume(services, url)
    assert_names(error, "configure", "queue", QUEUE)
    assert error.queue == QUEUE


async def test_no_configure_permission_on_the_dead_letter_queue(
    restricted: Restricted, services: Services
) -> None:
    url = await restricted(configure=_but(f"{QUEUE}.dlq"))
    error = await refused_consume(services, url, exchange_name=None)
    assert_names(error, "configure", "queue", f"{QUEUE}.dlq")


async def test_no_read_permission_on_the_exchange_to_bind_from(
    restricted: Restricted, services: Services
) -> None:
    url = await restricted(read=_but(EXCHANGE))
    error = await refused_consume(services, url)
    assert_names(error, "read", "exchange", EXCHANGE)
    assert error.exchange == EXCHANGE


async def test_no_write_permission_on_the_queue_to_bind_to(
    restricted: Restricted, services: Services
) -> None:
    url = await restricted(write=_but(QUEUE))
    error = await refused_consume(services, url)
    assert_names(error, "write", "queue", QUEUE)


async def test_no_read_permission_on_the_delay_queue(
    restricted: Restricted, services: Services
) -> None:
    # A queue that dead-letters (the delay queue does, into q) needs read permission on itself.
    url = await restricted(read=_but(f"{QUEUE}.delay"))
    error = await refused_consume(services, url, exchange_name=None)
    assert_names(error, "configure or read", "queue", f"{QUEUE}.delay")


@pytest.mark.parametrize(
    "retry",
    [
        # Refused when the delay queue, which dead-letters through it, is declared ...
        pytest.param(RetryConfig(max_retries=-1), id="with-retries"),
        # ... and, with no delay queue, by the check at consume start: dead letters need it.
        pytest.param(RetryConfig(max_retries=0), id="dead-letters-only"),
    ],
)
async def test_no_write_permission_on_the_default_exchange(
    retry: RetryConfig, restricted: Restricted, services: Services
) -> None:
    # Retry copies, dead letters and replies are published to the default exchange: without
    # it the first failing message would close the channel and loop. Checked at consume start.
    url = await restricted(write=_but("amq.default"))
    error = await refused_consume(services, url, retry, exchange_name=None)
    assert_names(error, "write", "exchange", "amq.default")
    assert "dead letters" in str(error)


async def test_no_read_permission_on_the_queue(restricted: Restricted, services: Services) -> None:
    url = await restricted(read=_but(QUEUE))
    error = await refused_consume(services, url)
    assert_names(error, "read", "queue", QUEUE)


async def test_no_permissions_in_the_vhost(
    restricted: Restricted, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    # Refused while the connection opens: AccessRefused ends consume (no retry loop), the
    # first log line says so at ERROR, and a publish fails at once instead of timing out.
    url = await restricted(granted=False)
    events, handle = services.build(url, publish_timeout=30)
    target = ConsumeChannel(url, QUEUE)
    with pytest.raises(eventrabbit.AccessRefused) as info:
        await services.consume(handle, target, timeout=FAIL_FAST_TIMEOUT)
    assert "virtual host" in str(info.value)
    [status] = handle.status()
    assert status.ended
    assert status.reconnects == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("virtual host" in text for text in errors), errors
    with pytest.raises(eventrabbit.PublishError, match="virtual host"):
        await events.publish("", "A", {}, key=QUEUE)


async def test_a_wrong_password_ends_consume_and_fails_publishing_at_once(
    broker_url: str, services: Services
) -> None:
    url = str(URL(broker_url).with_password("not-the-password"))
    events, handle = services.build(url, publish_timeout=30)
    with pytest.raises(eventrabbit.AccessRefused, match="refused the login") as info:
        await services.consume(handle, ConsumeChannel(url, QUEUE), timeout=FAIL_FAST_TIMEOUT)
    assert "not-the-password" not in str(info.value)
    with pytest.raises(eventrabbit.PublishError, match="refused the login"):
        await events.publish("", "A", {}, key=QUEUE)
