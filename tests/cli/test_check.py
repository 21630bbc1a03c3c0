"""``eventrabbit check``: the broker and the user's permissions; a service's queues and
exchange as the broker has them — missing (and left missing), matching, or clashing with what
the service declares — and the exit code that says whether the service would start."""

from __future__ import annotations

import uuid
from typing import Any

import aiormq.abc
import orjson
import pytest
from yarl import URL

from tests.cli.conftest import CLI, command_env
from tests.cli.services_check import service
from tests.conftest import Names, Services
from tests.helpers import BROKER_URL, assert_absent, censor_url, publish_raw, rabbitmqctl

pytestmark = pytest.mark.real_broker

TARGET = "tests.cli.services_check.service:CHANNELS"


def _states(report: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    (broker,) = report["brokers"]
    return {one["name"]: (one["state"], one["ok"]) for one in broker["objects"]}


async def test_check_without_a_service_reports_the_broker(cli: type[CLI]) -> None:
    ran = await cli.run("check", "--json")

    assert ran.code == 0, ran.stderr
    (broker,) = orjson.loads(ran.stdout)["brokers"]
    assert broker["url"] == censor_url(BROKER_URL)
    assert broker["product"] == "RabbitMQ"
    assert broker["version"]
    assert broker["vhost"] == "/"
    assert broker["permissions"] == {"declare": True, "bind": True, "publish": True, "delete": True}
    assert broker["objects"] == []


async def test_check_of_a_clean_service_exits_0_and_creates_nothing(
    cli: type[CLI],
    names: Names,
    services: Services,
    amqp_channel: aiormq.abc.AbstractChannel,
) -> None:
    queue, exchange = names.queue(), names.exchange()
    env = command_env(CHECK_QUEUE=queue, CHECK_EXCHANGE=exchange)
    companions = [queue, f"{queue}.delay", f"{queue}.dlq"]

    ran = await cli.run("check", TARGET, "--json", env=env)
    assert ran.code == 0, ran.stdout + ran.stderr
    assert _states(orjson.loads(ran.stdout)) == {
        name: ("missing", True) for name in [exchange, *companions]
    }
    await assert_absent(amqp_channel, queues=companions, exchanges=[exchange])

    # The service itself declares them; check then finds them as it declared them.
    events, handle = services.build(retry_config=service.RETRY)
    events.consumer("ping")(service.ping)
    await services.consume(handle, service.channel(BROKER_URL, queue, exchange))
    await publish_raw(amqp_channel, b"{}", f"{queue}.dlq")

    ran = await cli.run("check", TARGET, env=env)
    assert ran.code == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert any(f"{queue!r}" in line and "1 consumer" in line for line in lines)
    assert any(f"'{queue}.dlq'" in line and "1 message," in line for line in lines)
    assert lines[-1] == "the service would start cleanly"


async def test_check_names_each_clash_and_exits_1(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    queue, exchange = names.queue(), names.exchange()
    # The service declares a fanout exchange and a delay queue with a 2 s TTL.
    await amqp_channel.exchange_declare(exchange, exchange_type="direct", durable=True)
    await amqp_channel.queue_declare(
        f"{queue}.delay", durable=True, arguments={"x-message-ttl": 1000}
    )

    ran = await cli.run(
        "check", TARGET, "--json", env=command_env(CHECK_QUEUE=queue, CHECK_EXCHANGE=exchange)
    )

    assert ran.code == 1
    report = orjson.loads(ran.stdout)
    assert report["ok"] is False
    assert _states(report) == {
        exchange: ("clash", False),
        queue: ("missing", True),
        f"{queue}.delay": ("clash", False),
        f"{queue}.dlq": ("missing", True),
    }
    details = {one["name"]: one["detail"] for one in report["brokers"][0]["objects"]}
    assert "x-message-ttl" in details[f"{queue}.delay"]
    assert "'direct'" in details[exchange]
    await assert_absent(amqp_channel, queues=[queue, f"{queue}.dlq"])


async def test_an_old_quorum_queue_without_a_dead_letter_target_is_not_a_clash(
    cli: type[CLI], names: Names, amqp_channel: aiormq.abc.AbstractChannel
) -> None:
    # What an earlier eventrabbit declared: a quorum work queue without a dead-letter target,
    # which consume now uses as it is (eventrabbit.quorum).
    queue, exchange = names.queue(), names.exchange()
    await amqp_channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    env = command_env(CHECK_QUEUE=queue, CHECK_EXCHANGE=exchange, CHECK_QUORUM="1")

    ran = await cli.run("check", TARGET, "--json", env=env)

    assert ran.code == 0, ran.stdout + ran.stderr
    details = {one["name"]: one for one in orjson.loads(ran.stdout)["brokers"][0]["objects"]}
    assert details[queue]["ok"] is True
    assert "without a dead-letter target" in details[queue]["detail"]


async def test_check_reports_what_the_user_may_not_do(cli: type[CLI], names: Names) -> None:
    user, password = f"test-check-{uuid.uuid4().hex[:8]}", "pw-restricted"
    await rabbitmqctl("add_user", user, password)
    try:
        # May read, but neither configure nor write anything.
        await rabbitmqctl("set_permissions", "-p", "/", user, "^$", "^$", ".*")
        url = URL(BROKER_URL).with_user(user).with_password(password)
        env = command_env(str(url), CHECK_QUEUE=names.queue(), CHECK_EXCHANGE=names.exchange())

        ran = await cli.run("check", TARGET, "--json", env=env)
    finally:
        await rabbitmqctl("delete_user", user)

    assert ran.code == 1
    report = orjson.loads(ran.stdout)
    (broker,) = report["brokers"]
    assert broker["permissions"] == {
        "declare": False,
        "bind": None,  # nothing to bind
        "publish": False,
        "delete": None,  # nothing to delete
    }
    # What is missing is what consume would declare; only the write permission consume checks
    # at start is certain to stop it.
    assert {state for state, _ in _states(report).values()} == {"missing"}
    assert password not in ran.stdout + ran.stderr
