"""Passwords never show: not in the repr/str of any public object, not in an exception's text
or traceback, not in any log record at any level (DEBUG included, aiormq's too).

A service with a password in its URLs goes through connect, consume, a connect that fails (a
dead node, a wrong password), publish, a dead letter and close, with every log record kept;
then everything it produced is searched for the password, raw and percent-encoded.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from yarl import URL

import eventrabbit
from eventrabbit.checks import censor_url
from eventrabbit.common import ConsumeChannel, QueueConfig, RetryConfig
from eventrabbit.connection import open_connection
from tests.conftest import Services
from tests.helpers import BROKER_URL, Calls, collect, rabbitmqctl

# Nothing listens on port 1 of the loopback interface: connecting is refused at once.
DEAD_PORT = 1


@dataclass
class Account:
    """A vhost and a user of the test's own, with a password that needs escaping in a URL."""

    vhost: str
    user: str
    password: str
    wrong_password: str
    url: str = ""
    dead_url: str = ""
    wrong_url: str = ""
    secrets: list[str] = field(default_factory=list)


def _url(base: URL, user: str, password: str, vhost: str, port: int | None = None) -> str:
    url = base.with_user(user).with_password(password)
    if port is not None:
        url = url.with_port(port)
    return str(url.with_path("/" + quote(vhost, safe=""), encoded=True))


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    tag = uuid.uuid4().hex[:8]
    made = Account(
        vhost=f"test.pw.{tag}",
        user=f"test-pw-{tag}",
        password=f"p@ss:w/rd%{tag}",
        wrong_password=f"wr0ng@{tag}",
    )
    await rabbitmqctl("add_vhost", made.vhost)
    await rabbitmqctl("add_user", made.user, made.password)
    try:
        await rabbitmqctl("set_permissions", "-p", made.vhost, made.user, ".*", ".*", ".*")
        base = URL(BROKER_URL)
        made.url = _url(base, made.user, made.password, made.vhost)
        made.dead_url = _url(base, made.user, made.password, made.vhost, DEAD_PORT)
        made.wrong_url = _url(base, made.user, made.wrong_password, made.vhost)
        for secret, url in ((made.password, made.url), (made.wrong_password, made.wrong_url)):
            # Raw, percent-encoded as RFC 3986 and as yarl writes it into the URL.
            made.secrets += [secret, quote(secret, safe=""), URL(url).raw_password or ""]
        made.secrets += ["ss:w/rd", "wr0ng"]  # the distinctive parts alone
        made.secrets = sorted({s for s in made.secrets if s})
        yield made
    finally:
        await rabbitmqctl("delete_user", made.user)
        await rabbitmqctl("delete_vhost", made.vhost)


def exception_texts(exc: BaseException) -> Iterator[str]:
    """str, repr and the formatted traceback of ``exc`` and every exception chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        one = pending.pop()
        if one is None or id(one) in seen:
            continue
        seen.add(id(one))
        yield str(one)
        yield repr(one)
        yield "".join(traceback.format_exception(one))
        yield from (str(value) for value in vars(one).values()) if hasattr(one, "__dict__") else ()
        pending += [one.__cause__, one.__context__]


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Everything a handler could print of ``record``: message, args, exception."""
    yield record.getMessage()
    yield str(record.msg)
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    for arg in args or ():
        yield str(arg)
        yield repr(arg)
    if record.exc_info and record.exc_info[1] is not None:
        yield from exception_texts(record.exc_info[1])
    if record.exc_text:
        yield record.exc_text
    if record.stack_info:
        yield record.stack_info


def object_texts(*objects: Any) -> Iterator[str]:
    for one in objects:
        yield str(one)
        yield repr(one)


@pytest.mark.real_broker  # a user and vhost of its own: rabbitmqctl
async def test_no_password_anywhere(
    account: Account, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, aiormq's included
    texts: list[str] = []
    errors: list[BaseException] = []

    # --- connect and consume: the first node of the list is dead, the second answers.
    events, handle = services.build(
        [account.dead_url, account.url],  # type: ignore[arg-type]  # a cluster's URL list
        retry_config=RetryConfig(max_retries=0),
        publish_timeout=5,
    )
    calls: Calls[int] = Calls()

    @events.consumer("PING")
    async def ping(n: int) -> None:
        if n < 0:
            raise ValueError(f"negative: {n}")  # dead-lettered: max_retries=0
        calls.add(n)

    target = ConsumeChannel(
        [account.dead_url, account.url],
        "orders",
        "shop",
        "fanout",
        QueueConfig(prefetch_count=5),
    )
    single = ConsumeChannel(account.url, "single")
    await services.consume(handle, target)
    await services.consume(handle, single)

    # --- publish, and a dead letter.
    await events.publish("shop", "PING", {"n": 1})
    await events.publish("shop", "PING", {"n": -1})
    assert await calls.count(1) == [1]
    probe = await open_connection(account.url)
    try:
        channel = await probe.channel()
        [dead] = await collect(channel, "orders.dlq", 1)
        assert b'"n":-1' in dead.body
    finally:
        await probe.close()

    # --- connects that fail: a publisher whose only node is dead, a consumer with a wrong
    # password (consume ends with AccessRefused), a topology error.
    dead_events, dead_handle = services.build(account.dead_url, publish_timeout=0.5)
    with pytest.raises(eventrabbit.PublishError) as publish_failure:
        await dead_events.publish("shop", "PING", {"n": 2})
    errors.append(publish_failure.value)

    _, wrong_handle = services.build(account.wrong_url)
    wrong = ConsumeChannel(account.wrong_url, "wrong")
    with pytest.raises(eventrabbit.AccessRefused) as refused:
        await services.consume(wrong_handle, wrong)  # ends: a refused login is not retried
    errors.append(refused.value)
    clash = ConsumeChannel([account.url], "clash", "shop", "direct")
    with pytest.raises(eventrabbit.TopologyError) as topology_failure:
        await services.consume(handle, clash)
    errors.append(topology_failure.value)
    with pytest.raises(TimeoutError) as not_ready:
        await handle.ready("never-consumed", timeout=0.1)
    errors.append(not_ready.value)

    # --- the public objects, while running.
    texts += object_texts(
        events,
        handle,
        events.publisher,
        events.rpc,
        events.publisher.channel.endpoints,
        dead_events,
        dead_handle,
        wrong_handle,
        target,
        single,
        wrong,
        clash,
        *handle.status(),
        *wrong_handle.status(),
        handle.status(),
    )

    # --- close.
    await handle.close()
    await wrong_handle.close()
    await dead_handle.close()
    texts += object_texts(*handle.status(), *wrong_handle.status())

    for exc in errors:
        texts += exception_texts(exc)
    records = caplog.records
    assert any(record.levelno == logging.DEBUG for record in records)
    assert any("wrong" in record.getMessage() for record in records)
    for record in records:
        texts += record_texts(record)

    leaks = [(secret, text) for text in texts for secret in account.secrets if secret in text]
    assert not leaks, leaks[:3]
    # And the URLs did show, censored: the search looked at real text.
    assert any(censor_url(account.url) in text for text in texts)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("amqp://u:s3cr3t@h/", id="plain"),
        pytest.param("amqp://u:s3cr3t%40x@h/", id="escaped"),
        pytest.param("amqp://:s3cr3t@h/", id="no-user"),
        pytest.param("amqp://u:s3cr3t@[bad/", id="unparseable"),
        pytest.param("amqp://u:s3cr3t@h:port/", id="bad-port"),
        pytest.param("memory://u:s3cr3t@broker", id="other-scheme"),
    ],
)
def test_a_consume_channel_shows_no_password(url: str) -> None:
    for made in (ConsumeChannel(url, "q"), ConsumeChannel([url, "amqp://h2/"], "q")):
        for text in object_texts(made):
            assert "s3cr3t" not in text
            assert "ConsumeChannel(url=" in text
    assert "******" in repr(ConsumeChannel("amqp://u:s3cr3t@h/", "q"))


def test_the_searches_find_a_password_where_there_is_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The searches above are not vacuous: the same helpers see a password where there is one.
    caplog.set_level(logging.DEBUG)
    logging.getLogger("tests.passwords").debug("url %s", "amqp://u:s3cr3t@h/")
    assert any("s3cr3t" in text for r in caplog.records for text in record_texts(r))
    with pytest.raises(ValueError, match="outer") as info:
        raise ValueError("outer") from KeyError("s3cr3t")
    assert any("s3cr3t" in text for text in exception_texts(info.value))
