"""The exception tree: one root, builtins mixed in where they mean something, context kept."""

from __future__ import annotations

import pytest

import eventrabbit
from eventrabbit.errors import (
    BrokerUnavailable,
    ConfigurationError,
    ConsumerTimeout,
    DuplicateHandlerError,
    EventRabbitError,
    HandlerTimeout,
    InvalidMessage,
    PublishError,
    PublishTimeout,
    RemoteError,
    RPCError,
    RPCTimeout,
    TopologyError,
    UnroutableError,
)


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        pytest.param(ConfigurationError, (EventRabbitError, ValueError), id="configuration"),
        pytest.param(
            DuplicateHandlerError, (ConfigurationError, EventRabbitError, ValueError), id="dup"
        ),
        pytest.param(TopologyError, (EventRabbitError,), id="topology"),
        pytest.param(BrokerUnavailable, (EventRabbitError, ConnectionError), id="broker"),
        pytest.param(PublishError, (EventRabbitError,), id="publish"),
        pytest.param(UnroutableError, (PublishError, EventRabbitError), id="unroutable"),
        pytest.param(
            PublishTimeout, (PublishError, EventRabbitError, TimeoutError), id="publish-timeout"
        ),
        pytest.param(InvalidMessage, (EventRabbitError,), id="invalid-message"),
        pytest.param(HandlerTimeout, (EventRabbitError, TimeoutError), id="handler-timeout"),
        pytest.param(ConsumerTimeout, (EventRabbitError,), id="consumer-timeout"),
        pytest.param(RPCError, (EventRabbitError,), id="rpc"),
        pytest.param(RPCTimeout, (RPCError, EventRabbitError, TimeoutError), id="rpc-timeout"),
        pytest.param(RemoteError, (RPCError, EventRabbitError), id="remote"),
    ],
)
def test_exception_tree(cls: type[Exception], bases: tuple[type[BaseException], ...]) -> None:
    for base in bases:
        assert issubclass(cls, base), (cls.__name__, base.__name__)


@pytest.mark.parametrize(
    ("cls", "not_a"),
    [
        pytest.param(TopologyError, ValueError, id="topology-not-value-error"),
        pytest.param(UnroutableError, TimeoutError, id="unroutable-not-timeout"),
        pytest.param(InvalidMessage, ValueError, id="invalid-message-not-value-error"),
        pytest.param(PublishError, ConnectionError, id="publish-not-connection-error"),
        pytest.param(RemoteError, TimeoutError, id="remote-not-timeout"),
        pytest.param(RPCTimeout, PublishError, id="rpc-timeout-not-publish-error"),
        pytest.param(ConsumerTimeout, TimeoutError, id="consumer-timeout-not-a-timeout-error"),
        pytest.param(HandlerTimeout, RPCError, id="handler-timeout-not-rpc-error"),
    ],
)
def test_exception_tree_does_not_over_mix(cls: type[Exception], not_a: type[BaseException]) -> None:
    assert not issubclass(cls, not_a)


def test_root_is_exported_and_every_error_derives_from_it() -> None:
    for name in eventrabbit.__all__:
        value = getattr(eventrabbit, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, eventrabbit.EventRabbitError), name


def test_duplicate_handler_error_keeps_the_action() -> None:
    exc = DuplicateHandlerError("order.created")
    assert exc.action == "order.created"
    assert "'order.created'" in str(exc)


def test_topology_error_keeps_context() -> None:
    exc = TopologyError("queue 'q' clashes", queue="q")
    assert (exc.queue, exc.exchange, str(exc)) == ("q", None, "queue 'q' clashes")


def test_publish_error_keeps_context() -> None:
    exc = PublishTimeout("no confirm", exchange="ex", routing_key="k", message_id="m1")
    assert (exc.exchange, exc.routing_key, exc.message_id) == ("ex", "k", "m1")
    assert str(exc) == "no confirm"


def test_broker_unavailable_keeps_the_url() -> None:
    exc = BrokerUnavailable("cannot connect", url="amqp://u:******@h/")
    assert exc.url == "amqp://u:******@h/"


def test_invalid_message_reason_is_its_text() -> None:
    exc = InvalidMessage('body has no "data"')
    assert exc.reason == str(exc) == 'body has no "data"'


def test_rpc_timeout_keeps_the_action() -> None:
    exc = RPCTimeout("no reply to 'price.quote' within 1 s", action="price.quote")
    assert exc.action == "price.quote"


def test_remote_error_keeps_type_and_message() -> None:
    exc = RemoteError("PaymentDeclined", "card expired")
    assert (exc.type, exc.message) == ("PaymentDeclined", "card expired")
    assert str(exc) == "PaymentDeclined: card expired"
