"""URLs (censoring, checking), backoff, and failing to connect — without a broker."""

from __future__ import annotations

import inspect
import itertools
import random
from collections.abc import Iterator

import aiormq
import pytest

from eventrabbit import (
    BrokerUnavailable,
    ConfigurationError,
    ConsumeChannel,
    Events,
    Handle,
    ReconnectConfig,
    build_event_dependencies,
)
from eventrabbit.amqp_connection import _Connection
from eventrabbit.connection import (
    Endpoints,
    as_urls,
    backoff,
    censor,
    check_url,
    open_connection,
)
from eventrabbit.pool import ConnectionPool

SECRET = "s3cr3t"
# Nothing listens on port 1 of the loopback interface: connecting is refused at once.
CLOSED_PORT_URL = f"amqp://guest:{SECRET}@127.0.0.1:1/"


# ---------------------------------------------------------------------------------------------
# censor


@pytest.mark.parametrize(
    ("url", "censored"),
    [
        pytest.param(
            f"amqp://guest:{SECRET}@localhost:5672/",
            "amqp://guest:******@localhost:5672/",
            id="amqp",
        ),
        pytest.param(
            f"amqps://user:{SECRET}@rabbit.example.com:5671/prod?heartbeat=30",
            "amqps://user:******@rabbit.example.com:5671/prod?heartbeat=30",
            id="amqps-vhost-query",
        ),
        pytest.param(
            "amqp://user:p%40ss%3Aword@h/", "amqp://user:******@h/", id="escaped-password"
        ),
        pytest.param(f"amqp://:{SECRET}@h/", "amqp://:******@h/", id="password-without-user"),
    ],
)
def test_censor_hides_the_password(url: str, censored: str) -> None:
    assert censor(url) == censored
    assert SECRET not in censor(url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("amqp://localhost:5672/", id="no-credentials"),
        pytest.param("amqp://guest@localhost/", id="user-only"),
        pytest.param("amqps://rabbit.example.com/vh?heartbeat=5", id="amqps-query"),
    ],
)
def test_censor_leaves_urls_without_a_password_alone(url: str) -> None:
    assert censor(url) == url


def test_censor_accepts_a_yarl_url() -> None:
    from yarl import URL

    assert censor(URL(f"amqp://u:{SECRET}@h/")) == "amqp://u:******@h/"


# ---------------------------------------------------------------------------------------------
# check_url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("amqp://localhost", id="amqp-bare"),
        pytest.param("amqp://guest:guest@localhost:5672/", id="amqp-credentials"),
        pytest.param("amqp://guest:guest@localhost:5672/%2F", id="amqp-default-vhost-escaped"),
        pytest.param("amqp://u:p@h/my-vhost", id="amqp-vhost"),
        pytest.param(
            "amqp://u:p@h:5672/vh?heartbeat=30&connection_timeout=10000", id="amqp-vhost-query"
        ),
        pytest.param("amqps://u:p@rabbit.example.com:5671/vh", id="amqps-vhost"),
        pytest.param("amqps://u:p@h/vh?cafile=/etc/ca.pem&no_verify_ssl=1", id="amqps-query"),
        pytest.param("AMQP://localhost/", id="scheme-upper-case"),
    ],
)
def test_check_url_accepts_amqp_and_amqps(url: str) -> None:
    check_url(url)  # no exception


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"http://guest:{SECRET}@localhost:15672/", id="http"),
        pytest.param(f"https://guest:{SECRET}@localhost/", id="https"),
        pytest.param(f"redis://:{SECRET}@localhost:6379/0", id="redis"),
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("localhost:5672", id="host-port-only"),
        pytest.param(f"amqp://guest:{SECRET}@localhost:99999/", id="port-out-of-range"),
        pytest.param(f"amqp://guest:{SECRET}@localhost:port/", id="port-not-a-number"),
        pytest.param(f"amqp://guest:{SECRET}@[not-ipv6]/", id="bad-ipv6"),
        # a mistyped or missing scheme: the password must still not be echoed
        pytest.param(f"guest:{SECRET}@localhost:5672/", id="scheme-missing"),
        pytest.param(f"amqp ://guest:{SECRET}@localhost/", id="scheme-with-space"),
        # yarl's own error text quotes the netloc
        pytest.param(f"amqps://guest:{SECRET}@\u2100/", id="netloc-invalid-nfkc"),
    ],
)
def test_check_url_refuses_without_showing_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_url(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("amqp://", id="nothing"),
        pytest.param("amqp:///vhost", id="vhost-only"),
        pytest.param(f"amqp://guest:{SECRET}@/vhost", id="credentials-no-host"),
        pytest.param(f"amqp:/guest:{SECRET}@localhost/", id="single-slash"),
    ],
)
def test_check_url_refuses_a_url_without_a_host(url: str) -> None:
    # aiormq cannot connect without a host (asyncio raises a bare ValueError deep inside
    # aiormq.connect), so the URL must be refused up front as a configuration error.
    with pytest.raises(ConfigurationError) as info:
        check_url(url)
    assert SECRET not in str(info.value)


def test_check_url_error_says_which_schemes_work_without_quoting_the_url() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_url(f"http://guest:{SECRET}@localhost/")
    assert SECRET not in str(info.value)
    assert "amqp://" in str(info.value)


# ---------------------------------------------------------------------------------------------
# backoff


def _ceilings(initial: float, maximum: float) -> Iterator[float]:
    ceiling = initial
    while True:
        yield ceiling
        ceiling = min(maximum, ceiling * 2)


@pytest.mark.parametrize(
    ("initial", "maximum", "expected"),
    [
        pytest.param(0.5, 30.0, [0.5, 1, 2, 4, 8, 16, 30, 30, 30], id="defaults"),
        pytest.param(1.0, 5.0, [1, 2, 4, 5, 5, 5], id="small-max"),
        pytest.param(0.1, 0.1, [0.1, 0.1, 0.1], id="max-equals-initial"),
    ],
)
def test_backoff_ceilings_grow_and_are_bounded(
    monkeypatch: pytest.MonkeyPatch, initial: float, maximum: float, expected: list[float]
) -> None:
    # With the jitter pinned to its upper end, the delays are exactly the ceilings.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    delays = list(itertools.islice(backoff(initial, maximum), len(expected)))
    assert delays == pytest.approx(expected)


def test_backoff_with_the_default_reconnect_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    config = ReconnectConfig()
    delays = backoff(config.initial_delay, config.max_delay)
    assert list(itertools.islice(delays, 8)) == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_backoff_lower_end_of_jitter_is_half_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    delays = list(itertools.islice(backoff(1.0, 8.0), 6))
    assert delays == pytest.approx([0.5, 1, 2, 4, 4, 4])


def test_backoff_jitter_stays_within_half_to_full_ceiling() -> None:
    samples: list[list[float]] = [
        list(itertools.islice(backoff(0.5, 30.0), 10)) for _ in range(200)
    ]
    ceilings = list(itertools.islice(_ceilings(0.5, 30.0), 10))
    for delays in samples:
        for delay, ceiling in zip(delays, ceilings, strict=True):
            assert ceiling / 2 <= delay <= ceiling
            assert delay <= 30.0
    # there is jitter: the same step does not always give the same delay
    assert len({delays[3] for delays in samples}) > 1


def test_backoff_is_endless() -> None:
    delays = backoff(0.01, 0.02)
    for _ in range(1000):
        assert next(delays) <= 0.02


# ---------------------------------------------------------------------------------------------
# failing to connect


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(CLOSED_PORT_URL, id="amqp"),
        pytest.param(f"amqp://guest:{SECRET}@127.0.0.1:1/vh?heartbeat=5", id="amqp-vhost-query"),
        pytest.param(f"amqps://guest:{SECRET}@127.0.0.1:1/", id="amqps"),
    ],
)
async def test_open_connection_to_a_closed_port_raises_broker_unavailable(url: str) -> None:
    with pytest.raises(BrokerUnavailable) as info:
        await open_connection(url)
    exc = info.value
    # Refused, and said so: not waited out until CONNECT_TIMEOUT.
    assert "Connect call failed" in str(exc)
    assert "TimeoutError" not in str(exc)
    assert isinstance(exc, ConnectionError)
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in exc.url
    assert exc.url == censor(url)
    assert "******" in exc.url
    assert "127.0.0.1:1" in str(exc)


async def test_connection_pool_raises_broker_unavailable_and_keeps_nothing() -> None:
    pool = ConnectionPool()
    pool.join((CLOSED_PORT_URL,))
    with pytest.raises(BrokerUnavailable) as info:
        await pool.get((CLOSED_PORT_URL,))
    assert SECRET not in str(info.value)
    assert pool.open_count == 0
    await pool.leave((CLOSED_PORT_URL,))
    with pytest.raises(LookupError):
        await pool.get((CLOSED_PORT_URL,))


async def test_endpoints_try_every_node_and_name_them_censored() -> None:
    urls = [CLOSED_PORT_URL, f"amqp://admin:{SECRET}@127.0.0.2:1/vh"]
    endpoints = Endpoints(urls)
    assert endpoints.urls == tuple(urls)
    assert str(endpoints) == "amqp://guest:******@127.0.0.1:1/, amqp://admin:******@127.0.0.2:1/vh"
    with pytest.raises(BrokerUnavailable) as info:
        await endpoints.connect()
    text = str(info.value)
    assert SECRET not in text
    assert SECRET not in info.value.url
    assert "127.0.0.1:1" in text
    assert "127.0.0.2:1" in text


@pytest.mark.parametrize(
    ("url", "urls"),
    [
        pytest.param(CLOSED_PORT_URL, (CLOSED_PORT_URL,), id="one"),
        pytest.param(["amqp://a/", "amqps://b/"], ("amqp://a/", "amqps://b/"), id="list"),
    ],
)
def test_as_urls(url: str | list[str], urls: tuple[str, ...]) -> None:
    assert as_urls(url) == urls


@pytest.mark.parametrize(
    "url",
    [
        pytest.param([], id="empty-list"),
        pytest.param(["amqp://a/", f"http://u:{SECRET}@b/"], id="one-bad-in-list"),
    ],
)
def test_as_urls_refuses(url: list[str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        as_urls(url)
    assert SECRET not in str(info.value)


# ---------------------------------------------------------------------------------------------
# build_event_dependencies / consume refuse bad URLs before connecting


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"http://guest:{SECRET}@localhost:15672/", id="http"),
        pytest.param("redis://localhost:6379/0", id="redis"),
        pytest.param("localhost", id="no-scheme"),
        pytest.param("", id="empty"),
        pytest.param([], id="empty-list"),
        pytest.param([CLOSED_PORT_URL, f"http://u:{SECRET}@h/"], id="bad-url-in-list"),
    ],
)
def test_build_event_dependencies_refuses_a_non_amqp_url(url: str | list[str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        build_event_dependencies(url)
    assert SECRET not in str(info.value)


def test_build_event_dependencies_does_not_connect() -> None:
    # Nothing listens there; building must still succeed: connections open on first use.
    events, handle = build_event_dependencies(CLOSED_PORT_URL)
    assert isinstance(events, Events)
    assert isinstance(handle, Handle)
    assert handle.events is events
    assert handle.registry is events.registry
    assert not events.publisher.connected
    assert handle.connection_count == 0


async def test_consume_refuses_a_non_amqp_channel_url() -> None:
    _, handle = build_event_dependencies(CLOSED_PORT_URL)
    channel = ConsumeChannel(f"http://guest:{SECRET}@localhost/", "q")
    with pytest.raises(ConfigurationError) as info:
        await handle.consume(channel)
    assert SECRET not in str(info.value)


def test_aiormq_still_has_the_blocked_handlers_eventrabbit_wraps() -> None:
    # eventrabbit.amqp_connection wraps these private handlers to tell hooks of resource
    # alarms: an aiormq that renames them must fail here, not silently stop telling.
    for name in (
        "_Connection__handle_connection_blocked",
        "_Connection__handle_connection_unblocked",
    ):
        assert callable(getattr(aiormq.Connection, name, None)), name
        assert getattr(_Connection, name) is not getattr(aiormq.Connection, name), name


def test_aiormq_still_has_the_reader_loop_eventrabbit_feeds() -> None:
    # eventrabbit.amqp_connection hands aiormq's private reader loop a FrameSource: an aiormq
    # that renames the loop (or stops iterating its receiver) must fail here, not silently
    # read frames the slow way.
    name = "_Connection__reader"
    assert callable(getattr(aiormq.Connection, name, None))
    assert getattr(_Connection, name) is not getattr(aiormq.Connection, name)
    source = inspect.getsource(getattr(aiormq.Connection, name))
    assert "async for weight, channel, frame in frame_receiver" in source


def test_aiormq_still_delivers_the_way_direct_delivery_copies() -> None:
    # eventrabbit.direct_delivery starts a consumer's task as aiormq's channel reader does and
    # notes the frame's time where aiormq's reader loop does: both private.
    reader = inspect.getsource(aiormq.Connection._Connection__reader)
    assert "self.__last_frame_time = self.loop.time()" in reader
    assert "await ch.frames.put((weight, frame))" in reader
    on_deliver = inspect.getsource(aiormq.Channel._on_deliver_frame)
    assert "task = self.create_task(consumer(message))" in on_deliver
    assert "task.add_done_callback(self._on_consumer_done)" in on_deliver
    content = inspect.getsource(aiormq.Channel._read_content)
    assert "DeliveredMessage(" in content
