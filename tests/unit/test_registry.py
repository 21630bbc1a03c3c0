"""Handler records and the consumer / producer / function decorators.

Producers and functions publish through the ``events``' publisher. These tests give ``Events``
a small recording stand-in for it: they check what the decorators hand to the publisher, not
what the broker does with it (the integration tests cover that).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from eventrabbit.errors import ConfigurationError, DuplicateHandlerError, PublishError
from eventrabbit.events import Events
from eventrabbit.publisher import Publisher
from eventrabbit.registry import Handler, Registry
from eventrabbit.rpc import RPCClient

# Never connected to: the decorators under test do not use RPC.
UNUSED_URL = "amqp://guest:guest@127.0.0.1:1/"

# ---------------------------------------------------------------------------------------------
# a publisher that records instead of talking to a broker


@dataclass(frozen=True)
class Published:
    exchange: str
    action: str
    data: Any
    routing_key: str
    mandatory: bool
    headers: dict[str, Any] | None


class RecordingPublisher:
    """Has the signature of ``Publisher.publish_event``; records every call."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls: list[Published] = []
        self.fail_with = fail_with

    async def publish_event(
        self,
        exchange: str,
        action: str,
        data: Any,
        *,
        routing_key: str = "",
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append(Published(exchange, action, data, routing_key, mandatory, headers))
        return f"message-{len(self.calls)}"


def test_recording_publisher_has_the_real_signature() -> None:
    # The stand-in must be called exactly like the real thing, or these tests prove nothing.
    real = inspect.signature(Publisher.publish_event)
    fake = inspect.signature(RecordingPublisher.publish_event)
    assert [(p.name, p.kind, p.default) for p in real.parameters.values()] == [
        (p.name, p.kind, p.default) for p in fake.parameters.values()
    ]


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def make_events(publisher: RecordingPublisher) -> Events:
    rpc = RPCClient(UNUSED_URL, publish_timeout=1.0)
    return Events(Registry(), cast(Publisher, publisher), rpc)


@pytest.fixture
def events(publisher: RecordingPublisher) -> Events:
    return make_events(publisher)


# ---------------------------------------------------------------------------------------------
# Handler.of: what a handler accepts, computed once


async def _plain(a: int, b: str) -> None: ...


async def _defaults(a: int, b: int = 1, c: str | None = None) -> None: ...


async def _keyword_only(a: int, *, b: int, c: int = 3) -> None: ...


async def _var_kwargs(a: int, **rest: Any) -> None: ...


async def _only_var_kwargs(**rest: Any) -> None: ...


async def _var_args(*args: Any, a: int) -> None: ...


async def _no_params() -> None: ...


async def _positional_only_with_default(a: int = 1, /, b: int = 2) -> None: ...


@pytest.mark.parametrize(
    ("func", "accepted", "required"),
    [
        pytest.param(_plain, {"a", "b"}, {"a", "b"}, id="plain"),
        pytest.param(_defaults, {"a", "b", "c"}, {"a"}, id="defaults-not-required"),
        pytest.param(_keyword_only, {"a", "b", "c"}, {"a", "b"}, id="keyword-only"),
        pytest.param(_var_kwargs, None, {"a"}, id="var-kwargs-accepts-anything"),
        pytest.param(_only_var_kwargs, None, set(), id="only-var-kwargs"),
        pytest.param(_var_args, {"a"}, {"a"}, id="var-args-ignored"),
        pytest.param(_no_params, set(), set(), id="no-params"),
        pytest.param(_positional_only_with_default, {"b"}, set(), id="positional-only-defaulted"),
    ],
)
def test_handler_of_records_accepted_and_required(
    func: Callable[..., Any], accepted: set[str] | None, required: set[str]
) -> None:
    handler = Handler.of("act", func)
    assert handler.action == "act"
    assert handler.func is func
    if accepted is None:
        assert handler.accepted is None
    else:
        assert handler.accepted == frozenset(accepted)
    assert handler.required == frozenset(required)


def test_handler_of_a_bound_method_does_not_count_self() -> None:
    class Service:
        async def on_event(self, order_id: int, note: str = "") -> None: ...

    handler = Handler.of("act", Service().on_event)
    assert handler.accepted == frozenset({"order_id", "note"})
    assert handler.required == frozenset({"order_id"})


async def _positional_only(a: int, /) -> None: ...


async def _mixed_positional_only(a: int, /, b: int) -> None: ...


@pytest.mark.parametrize("func", [_positional_only, _mixed_positional_only])
def test_handler_of_refuses_required_positional_only(func: Callable[..., Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        Handler.of("order.created", func)
    text = str(info.value)
    assert "'order.created'" in text
    assert "'a'" in text
    assert "positional-only" in text


@pytest.mark.parametrize(
    ("func", "data", "expected"),
    [
        pytest.param(_plain, {"a": 1, "b": "x"}, None, id="exact-fit"),
        pytest.param(_defaults, {"a": 1}, None, id="defaults-omitted"),
        pytest.param(_defaults, {"a": 1, "b": 2, "c": "z"}, None, id="defaults-given"),
        pytest.param(_keyword_only, {"a": 1, "b": 2}, None, id="keyword-only-fit"),
        pytest.param(_var_kwargs, {"a": 1, "zzz": 2, "yyy": 3}, None, id="var-kwargs-extra-ok"),
        pytest.param(_no_params, {}, None, id="no-params-empty-data"),
        pytest.param(
            _plain,
            {"a": 1, "b": "x", "z": 0, "y": 0},
            "data does not fit handler 'act': unexpected keys y, z",
            id="unknown-keys-sorted",
        ),
        pytest.param(
            _no_params,
            {"a": 1},
            "data does not fit handler 'act': unexpected keys a",
            id="no-params-given-data",
        ),
        pytest.param(
            _plain, {}, "data does not fit handler 'act': missing keys a, b", id="missing-all"
        ),
        pytest.param(
            _keyword_only,
            {"a": 1, "c": 3},
            "data does not fit handler 'act': missing keys b",
            id="missing-keyword-only",
        ),
        pytest.param(
            _var_kwargs,
            {"zzz": 1},
            "data does not fit handler 'act': missing keys a",
            id="var-kwargs-still-requires",
        ),
    ],
)
def test_misfit(func: Callable[..., Any], data: dict[str, Any], expected: str | None) -> None:
    assert Handler.of("act", func).misfit(data) == expected


# ---------------------------------------------------------------------------------------------
# registration


def test_consumer_returns_the_function_itself_and_registers_it(events: Events) -> None:
    async def on_created(order_id: int) -> None: ...

    decorated = events.consumer("order.created")(on_created)
    assert decorated is on_created
    handler = events.registry.handlers["order.created"]
    assert handler.func is on_created
    assert handler.accepted == frozenset({"order_id"})


def test_different_actions_register_side_by_side(events: Events) -> None:
    @events.consumer("a")
    async def on_a() -> None: ...

    @events.function("b", "ex")
    async def on_b() -> None: ...

    assert set(events.registry.handlers) == {"a", "b"}


def _sync(x: int) -> int:
    return x


async def _async_generator() -> Any:
    yield 1


_DECORATORS: list[Any] = [
    pytest.param(lambda ev: ev.consumer("act"), id="consumer"),
    pytest.param(lambda ev: ev.producer("ex", "act"), id="producer"),
    pytest.param(lambda ev: ev.function("act", "ex"), id="function"),
]


@pytest.mark.parametrize("make_decorator", _DECORATORS)
@pytest.mark.parametrize(
    "func",
    [
        pytest.param(_sync, id="sync-def"),
        pytest.param(lambda x: x, id="lambda"),
        pytest.param(_async_generator, id="async-generator"),
    ],
)
def test_decorators_refuse_non_coroutine_functions(
    events: Events, make_decorator: Callable[[Events], Any], func: Callable[..., Any]
) -> None:
    with pytest.raises(ConfigurationError, match="must be an async function"):
        make_decorator(events)(func)
    assert events.registry.handlers == {}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(lambda ev: ev.consumer("dup"), lambda ev: ev.consumer("dup"), id="c+c"),
        pytest.param(lambda ev: ev.consumer("dup"), lambda ev: ev.function("dup", "x"), id="c+f"),
        pytest.param(lambda ev: ev.function("dup", "x"), lambda ev: ev.consumer("dup"), id="f+c"),
        pytest.param(
            lambda ev: ev.function("dup", "x"), lambda ev: ev.function("dup", "y"), id="f+f"
        ),
    ],
)
def test_duplicate_action_raises_at_decoration_time(
    events: Events, first: Callable[[Events], Any], second: Callable[[Events], Any]
) -> None:
    async def one() -> None: ...

    async def two() -> None: ...

    first(events)(one)
    registered = events.registry.handlers["dup"]
    with pytest.raises(DuplicateHandlerError) as info:
        second(events)(two)
    assert info.value.action == "dup"
    assert "'dup'" in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    # the first registration is untouched
    assert events.registry.handlers["dup"] is registered


def test_duplicate_detection_does_not_count_producers(events: Events) -> None:
    # A producer publishes an action; it does not handle it, so a consumer of it is fine.
    @events.producer("ex", "order.created")
    async def create() -> dict[str, int]:
        return {}

    @events.consumer("order.created")
    async def on_created() -> None: ...

    assert list(events.registry.handlers) == ["order.created"]
    assert events.registry.handlers["order.created"].func is on_created


def test_two_events_objects_may_register_the_same_action() -> None:
    first = make_events(RecordingPublisher())
    second = make_events(RecordingPublisher())

    @first.consumer("same")
    async def a() -> None: ...

    @second.consumer("same")
    async def b() -> None: ...

    assert first.registry.handlers["same"].func is a
    assert second.registry.handlers["same"].func is b


def test_registry_add_refuses_a_second_handler() -> None:
    registry = Registry()

    async def h() -> None: ...

    registry.add(Handler.of("x", h))
    with pytest.raises(DuplicateHandlerError):
        registry.add(Handler.of("x", h))


# ---------------------------------------------------------------------------------------------
# wrappers keep their function's identity


@pytest.mark.parametrize(
    "make_decorator",
    [
        pytest.param(lambda ev: ev.producer("ex", "act"), id="producer"),
        pytest.param(lambda ev: ev.function("act", "ex"), id="function"),
    ],
)
def test_publishing_wrappers_keep_name_doc_and_signature(
    events: Events, make_decorator: Callable[[Events], Any]
) -> None:
    async def compute_total(order_id: int, *, discount: float = 0.0) -> float:
        """Compute the total of an order."""
        return 1.0

    wrapped = make_decorator(events)(compute_total)
    assert wrapped.__name__ == "compute_total"
    assert wrapped.__qualname__ == compute_total.__qualname__
    assert wrapped.__doc__ == "Compute the total of an order."
    assert wrapped.__module__ == compute_total.__module__
    assert wrapped.__wrapped__ is compute_total
    assert inspect.signature(wrapped) == inspect.signature(compute_total)
    assert inspect.iscoroutinefunction(wrapped)


# ---------------------------------------------------------------------------------------------
# producers


@pytest.mark.parametrize(
    ("key", "routing_key"),
    [
        pytest.param(None, "", id="key-none"),
        pytest.param("", "", id="key-empty"),
        pytest.param("orders.eu", "orders.eu", id="key-given"),
    ],
)
async def test_producer_publishes_its_result(
    events: Events, publisher: RecordingPublisher, key: str | None, routing_key: str
) -> None:
    @events.producer("orders", "order.created", key=key)
    async def create(order_id: int, qty: int = 1) -> dict[str, int]:
        return {"id": order_id, "qty": qty}

    result = await create(7, qty=2)

    assert result == {"id": 7, "qty": 2}
    assert publisher.calls == [
        Published("orders", "order.created", {"id": 7, "qty": 2}, routing_key, False, None)
    ]
    # a producer is not a handler
    assert events.registry.handlers == {}


async def test_producer_returns_the_very_object_it_published(
    events: Events, publisher: RecordingPublisher
) -> None:
    payload = {"id": 1}

    @events.producer("ex", "a")
    async def make() -> dict[str, int]:
        return payload

    assert await make() is payload
    assert publisher.calls[0].data is payload


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"k": 1}, id="dict"),
        pytest.param([1, 2], id="list"),
        pytest.param("text", id="str"),
        pytest.param(3, id="int"),
        pytest.param(2.5, id="float"),
        pytest.param(False, id="bool"),
        pytest.param(None, id="none"),
    ],
)
async def test_producer_publishes_any_json_result(
    events: Events, publisher: RecordingPublisher, value: Any
) -> None:
    @events.producer("ex", "a")
    async def make() -> Any:
        return value

    assert await make() == value
    assert len(publisher.calls) == 1
    assert publisher.calls[0].data == value
    assert type(publisher.calls[0].data) is type(value)


async def test_producer_mandatory_is_passed_to_the_publisher(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("ex", "a", "k", mandatory=True)
    async def make() -> int:
        return 1

    await make()
    assert publisher.calls == [Published("ex", "a", 1, "k", True, None)]


async def test_producer_publishes_once_per_call(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("ex", "tick")
    async def tick(n: int) -> int:
        return n

    for n in range(3):
        await tick(n)
    assert [call.data for call in publisher.calls] == [0, 1, 2]


async def test_producer_on_a_method_gets_self(publisher: RecordingPublisher) -> None:
    events = make_events(publisher)

    class OrderService:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix

        @events.producer("orders", "order.created", key="new")
        async def create(self, order_id: int) -> dict[str, str]:
            return {"id": f"{self.prefix}-{order_id}"}

    service = OrderService("eu")
    assert await service.create(5) == {"id": "eu-5"}
    assert await service.create(order_id=6) == {"id": "eu-6"}
    assert publisher.calls == [
        Published("orders", "order.created", {"id": "eu-5"}, "new", False, None),
        Published("orders", "order.created", {"id": "eu-6"}, "new", False, None),
    ]


class BusinessError(Exception):
    pass


async def test_producer_business_exception_propagates_and_publishes_nothing(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.producer("ex", "a")
    async def fails() -> int:
        raise BusinessError("out of stock")

    with pytest.raises(BusinessError, match="out of stock"):
        await fails()
    assert publisher.calls == []


async def test_producer_publish_failure_reaches_the_caller() -> None:
    failing = RecordingPublisher(fail_with=PublishError("nacked", exchange="ex"))
    events = make_events(failing)

    @events.producer("ex", "a")
    async def make() -> int:
        return 1

    with pytest.raises(PublishError, match="nacked"):
        await make()


# ---------------------------------------------------------------------------------------------
# functions


@pytest.mark.parametrize(
    ("action_reply", "published_action"),
    [
        pytest.param(None, "price.quote", id="reply-defaults-to-action"),
        pytest.param("price.quoted", "price.quoted", id="reply-given"),
    ],
)
@pytest.mark.parametrize(
    ("key", "routing_key"),
    [pytest.param(None, "", id="key-none"), pytest.param("q.key", "q.key", id="key-given")],
)
async def test_function_handles_action_and_publishes_reply(
    events: Events,
    publisher: RecordingPublisher,
    action_reply: str | None,
    published_action: str,
    key: str | None,
    routing_key: str,
) -> None:
    async def quote(sku: str, qty: int = 1) -> dict[str, Any]:
        return {"sku": sku, "total": qty * 2}

    wrapped = events.function("price.quote", "prices", action_reply, key)(quote)

    handler = events.registry.handlers["price.quote"]
    assert handler.func is wrapped
    # the wrapper fits data like the original does
    assert handler.accepted == frozenset({"sku", "qty"})
    assert handler.required == frozenset({"sku"})
    assert publisher.calls == []  # decorating publishes nothing

    result = await handler.func(sku="a", qty=3)

    assert result == {"sku": "a", "total": 6}
    assert publisher.calls == [
        Published("prices", published_action, {"sku": "a", "total": 6}, routing_key, False, None)
    ]


async def test_function_business_exception_publishes_nothing(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.function("a", "ex")
    async def fails() -> None:
        raise BusinessError("nope")

    with pytest.raises(BusinessError):
        await events.registry.handlers["a"].func()
    assert publisher.calls == []


async def test_function_mandatory_is_passed_to_the_publisher(
    events: Events, publisher: RecordingPublisher
) -> None:
    @events.function("a", "ex", "a.done", "k", mandatory=True)
    async def handle() -> str:
        return "ok"

    await handle()
    assert publisher.calls == [Published("ex", "a.done", "ok", "k", True, None)]


async def test_events_publish_without_a_decorator(
    events: Events, publisher: RecordingPublisher
) -> None:
    message_id = await events.publish("ex", "a", {"x": 1}, "key")
    assert message_id == "message-1"
    assert publisher.calls == [Published("ex", "a", {"x": 1}, "key", False, None)]


def test_handler_of_follows_functools_wraps() -> None:
    async def original(a: int, b: int = 0) -> None: ...

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> None: ...

    handler = Handler.of("x", wrapper)
    assert handler.accepted == frozenset({"a", "b"})
    assert handler.required == frozenset({"a"})
