"""The service as an AsyncAPI 3.0 document: what it consumes, publishes, replies and
dead-letters.

Theory of operation
-------------------
:func:`document` is pure: from the actions a service handles (:class:`Consumed`), those it
publishes (:class:`Published`) and the queues it consumes (:class:`ConsumeChannel`) it lays out

- *channels*: each queue (AMQP binding ``is: queue``; its exchange bindings in
  ``x-eventrabbit-bindings``) with its ``.delay`` and ``.dlq`` companions; each exchange and
  routing key a queue is bound with or an event is published to (``is: routingKey``, the
  address being the key); and ``reply``, the caller's ``reply_to`` address;
- *operations*: ``receive`` per queue and handled action, each with the ``reply`` a request
  carrying ``reply_to`` gets; ``send`` per published action and destination; the retry copies
  and dead letters each queue's consumer sends;
- *messages*: the envelope ``{"action": ..., "data": ...}`` per action, its reply
  (``{"data": ...}`` or ``{"error": ...}``), the retry copy and the dead letter.

Payloads are AsyncAPI Schema Objects (JSON Schema draft-07, the format every AsyncAPI tool
reads): :mod:`eventrabbit.schema` writes 2020-12 and :func:`~eventrabbit.schema.draft7`
rewrites it; shared classes live in ``components.schemas``. Ids are the names with anything
outside ``[A-Za-z0-9_.-]`` replaced, numbered when two names meet in one id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from . import asyncapi_parts as parts
from .common import ConsumeChannel, QueueConfig, RetryConfig
from .events import Events
from .handle import Handle
from .schema import SchemaWriter, draft7
from .shapes import AnyShape, Shape
from .topology import dead_letter_queue_name, delay_queue_name

VERSION = "3.0.0"


@dataclass(frozen=True, slots=True)
class Consumed:
    """An action the service handles: its ``data`` and result shapes and handler's name."""

    action: str
    data: Shape
    result: Shape | None = None
    handler: str = ""


@dataclass(frozen=True, slots=True)
class Published:
    """An action the service publishes, where to, and the shape of its ``data``."""

    action: str
    exchange: str
    key: str = ""
    data: Shape | None = None
    mandatory: bool = False


class Ids:
    """Ids for names: the allowed characters only, unique."""

    def __init__(self) -> None:
        self.taken: dict[str, str] = {}

    def of(self, name: str) -> str:
        if name in self.taken:
            return self.taken[name]
        base = re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "_"
        given, number = base, 1
        while given in self.taken.values():
            number += 1
            given = f"{base}_{number}"
        self.taken[name] = given
        return given


def document(
    consumed: Sequence[Consumed],
    published: Sequence[Published],
    channels: Sequence[ConsumeChannel],
    *,
    title: str,
    version: str,
    description: str | None = None,
    retry_config: RetryConfig | None = None,
    queue_config: QueueConfig | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of a service (see the module's docstring)."""
    retry = retry_config or RetryConfig()
    writer = SchemaWriter(ref_template="#/components/schemas/{name}")
    writer.count([c.data for c in consumed] + [c.result or AnyShape() for c in consumed])
    writer.count([p.data or AnyShape() for p in published])
    messages: dict[str, Any] = {}
    message_ids, channel_ids, operation_ids = Ids(), Ids(), Ids()
    received: dict[str, tuple[str, str, str]] = {}  # action -> message, reply, handler
    for handled in consumed:
        data = draft7(writer.write(handled.data))
        result = draft7(writer.write(handled.result or AnyShape()))
        mid = message_ids.of(handled.action)
        rid = message_ids.of(f"{handled.action}.reply")
        messages[mid] = parts.event_message(handled.action, data)
        messages[rid] = parts.reply_message(handled.action, result)
        received[handled.action] = (mid, rid, handled.handler)
    sent: list[tuple[Published, str]] = []
    for out in published:
        event = parts.event_message(out.action, draft7(writer.write(out.data or AnyShape())))
        mid = received[out.action][0] if out.action in received else message_ids.of(out.action)
        if messages.get(mid, event) != event:
            # Published with other data than its handler here takes: a message of its own.
            mid = message_ids.of(f"{out.action}.published")
        messages.setdefault(mid, event)
        sent.append((out, mid))
    messages[message_ids.of(parts.RETRY_COPY)] = parts.retry_message()
    messages[message_ids.of(parts.DEAD_LETTER)] = parts.dead_letter_message()

    out_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    reply_id = channel_ids.of("reply")
    out_channels[reply_id] = parts.reply_channel([rid for _, rid, _ in received.values()])

    def exchange_channel(name: str, key: str, kind: object, vhost: str) -> str:
        cid = channel_ids.of(f"exchange.{name or '(default)'}" + (f".{key}" if key else ""))
        out_channels.setdefault(cid, parts.exchange_channel(name, key, kind, vhost))
        return cid

    for channel in channels:
        vhost = vhost_of(channel.urls[0])
        config = channel.queue_config or queue_config or QueueConfig()
        queue = channel.queue_name
        bindings = [] if channel.exchange_name is None else list(channel.routing_keys())
        for key in bindings:
            assert channel.exchange_name is not None
            exchange_channel(channel.exchange_name, key, channel.exchange_type, vhost)
        qid = channel_ids.of(f"queue.{queue}")
        out_channels[qid] = parts.queue_channel(
            queue,
            vhost,
            config,
            channel.exchange_name,
            bindings,
            [m for m, _, _ in received.values()],
        )
        for action, (mid, rid, handler) in received.items():
            operations[operation_ids.of(f"receive.{queue}.{action}")] = parts.receive(
                qid, mid, reply_id, rid, handler
            )
        companions = [(dead_letter_queue_name(queue), parts.DEAD_LETTER, "deadLetter")]
        if retry.max_retries != 0:
            companions.insert(0, (delay_queue_name(queue), parts.RETRY_COPY, "retry"))
        for name, kind, verb in companions:
            cid = channel_ids.of(f"queue.{name}")
            mid = message_ids.of(kind)
            about = parts.companion_text(queue, kind, retry)
            out_channels[cid] = parts.queue_channel(name, vhost, config, None, [], [mid], about)
            operations[operation_ids.of(f"{verb}.{queue}")] = parts.send(cid, mid, about)
    vhost = vhost_of(channels[0].urls[0]) if channels else "/"
    for out, mid in sent:
        cid = exchange_channel(out.exchange, out.key, _declared_type(out.exchange, channels), vhost)
        out_channels[cid].setdefault("messages", {})[mid] = parts.ref("components/messages", mid)
        operations[operation_ids.of(f"send.{out.action}")] = parts.send(
            cid, mid, f"Publishes {out.action} (confirmed by the broker).", out.mandatory
        )
    info: dict[str, Any] = {"title": title, "version": version}
    if description is not None:
        info["description"] = description
    doc: dict[str, Any] = {"asyncapi": VERSION, "info": info}
    servers = parts.servers(url for channel in channels for url in channel.urls)
    if servers:
        doc["servers"] = servers
    doc["defaultContentType"] = "application/json"
    doc["channels"] = out_channels
    doc["operations"] = operations
    components: dict[str, Any] = {"messages": messages}
    if writer.defs:
        components["schemas"] = {name: draft7(one) for name, one in writer.defs.items()}
    doc["components"] = components
    return doc


def vhost_of(url: str) -> str:
    """The virtual host a broker URL names (``/`` when it names none)."""
    path = URL(url).path
    return path[1:] if len(path) > 1 else "/"


def _declared_type(exchange: str, channels: Iterable[ConsumeChannel]) -> object:
    """The type a consumed channel declares ``exchange`` with, if one does."""
    for channel in channels:
        if channel.exchange_name == exchange and channel.exchange_type is not None:
            return channel.exchange_type
    return None


def asyncapi(
    events: Events,
    *channels: ConsumeChannel,
    title: str = "eventrabbit service",
    version: str = "0.0.0",
    description: str | None = None,
    handle: Handle | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the service ``events`` decorates, consuming ``channels``.

    :param handle: the service's :class:`~eventrabbit.handle.Handle`, whose retry and queue
        settings the document states (default: eventrabbit's defaults).
    """
    consumed = [
        Consumed(action, handler.data_shape, handler.result_shape, _name(handler.func))
        for action, handler in events.registry.handlers.items()
    ]
    published = [
        Published(to.action, to.exchange_name, to.key, shape, to.mandatory)
        for to, shape in events.published_shapes()
    ]
    retry, queue = (handle.retry_config, handle.queue_config) if handle else (None, None)
    return document(consumed, published, channels, title=title, version=version,
                    description=description, retry_config=retry, queue_config=queue)  # fmt: skip


def asyncapi_json(events: Events, *channels: ConsumeChannel, **options: Any) -> str:
    """:func:`asyncapi` as JSON text (indented, keys in document order)."""
    return orjson.dumps(asyncapi(events, *channels, **options), option=orjson.OPT_INDENT_2).decode()


def asyncapi_yaml(events: Events, *channels: ConsumeChannel, **options: Any) -> str:
    """:func:`asyncapi` as YAML text; needs PyYAML (``pip install pyyaml``), imported here only.

    :raises ModuleNotFoundError: PyYAML is not installed.
    """
    import yaml  # type: ignore[import-untyped]

    text: str = yaml.safe_dump(asyncapi(events, *channels, **options), sort_keys=False)
    return text


def _name(func: Any) -> str:
    """``module.qualname``: where the handler is defined."""
    return f"{func.__module__}.{func.__qualname__}"
