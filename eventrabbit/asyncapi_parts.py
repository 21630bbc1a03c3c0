"""The objects an AsyncAPI 3.0 document of a service is made of (:mod:`eventrabbit.asyncapi`
lays them out): channels with their AMQP bindings, operations and messages.

Everything here is a pure function of names and schemas; it says what eventrabbit does on the
wire (README "Message format", "Retries and dead-letter queues", "reply_to (RPC)").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from yarl import URL

from .common import ExchangeType, QueueConfig, RetryConfig
from .failures import ERROR_HEADER, ORIGINAL_USER_HEADER, QUEUE_HEADER, RETRY_COUNT_HEADER

#: The version of the AsyncAPI AMQP bindings written.
AMQP_BINDING = "0.3.0"
#: The ids of the messages every queue's companions carry.
RETRY_COPY, DEAD_LETTER = "RetryCopy", "DeadLetter"
#: Where a request names its reply address and its correlation id (AMQP properties).
REPLY_TO, CORRELATION_ID = "$message.header#/reply_to", "$message.header#/correlation_id"


def ref(where: str, name: str) -> dict[str, str]:
    """A Reference Object to ``#/<where>/<name>`` (ids never need escaping)."""
    return {"$ref": f"#/{where}/{name}"}


def event_message(action: str, data: Any) -> dict[str, Any]:
    """An event of ``action``: the envelope with ``data`` of schema ``data``."""
    return {
        "name": action,
        "title": action,
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["action", "data"],
            "properties": {"action": {"type": "string", "const": action}, "data": data},
        },
        "bindings": {"amqp": {"messageType": action, "bindingVersion": AMQP_BINDING}},
    }


def reply_message(action: str, result: Any) -> dict[str, Any]:
    """The reply to a request of ``action``: its result, or why it failed for good."""
    error = {
        "type": "object",
        "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
    }
    return {
        "name": f"{action}.reply",
        "title": f"Reply to {action}",
        "summary": "The handler's result, or the error that ended the request for good.",
        "contentType": "application/json",
        "correlationId": {"location": CORRELATION_ID},
        "payload": {
            "oneOf": [
                _closed_object("data", result),
                _closed_object("error", error),
            ]
        },
    }


def _closed_object(key: str, schema: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: schema},
        "additionalProperties": False,
    }


def _headers(required: Sequence[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


def retry_message() -> dict[str, Any]:
    """A retry copy: the original message, counted."""
    count = {"type": "integer", "minimum": 1, "description": "the number of this retry"}
    return {
        "name": RETRY_COPY,
        "title": "Retry copy",
        "summary": "A copy of a message whose handler failed, to be handled again.",
        "description": "Body and properties unchanged; the broker's x-death headers removed.",
        "headers": _headers([RETRY_COUNT_HEADER], {RETRY_COUNT_HEADER: count}),
        "payload": {"description": "the original body, unchanged"},
    }


def dead_letter_message() -> dict[str, Any]:
    """A dead letter: the original message and why it failed."""
    text = {"type": "string"}
    headers = {
        ERROR_HEADER: {**text, "description": "'<exception class>: <message>' or the reason"},
        RETRY_COUNT_HEADER: {"type": "integer", "minimum": 0, "description": "retries done"},
        QUEUE_HEADER: {**text, "description": "the queue it failed on"},
        ORIGINAL_USER_HEADER: {**text, "description": "the user_id another user published"},
        "x-eventrabbit-dropped-headers": {**text, "description": "headers left out to fit"},
    }
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A message that failed for good or could not be read.",
        "headers": _headers([ERROR_HEADER, RETRY_COUNT_HEADER, QUEUE_HEADER], headers),
        "payload": {"description": "the original body, unchanged (it may not be JSON)"},
    }


def _amqp(binding: dict[str, Any]) -> dict[str, Any]:
    return {"amqp": {**binding, "bindingVersion": AMQP_BINDING}}


def queue_channel(
    queue: str,
    vhost: str,
    config: QueueConfig,
    exchange: str | None,
    keys: Sequence[str],
    message_ids: Iterable[str],
    description: str | None = None,
) -> dict[str, Any]:
    """A queue the service consumes or sends copies to, bound to ``exchange`` with ``keys``."""
    if description is None:
        bound = (
            f"bound to exchange {exchange!r} with keys {list(keys)!r}"
            if exchange
            else ("not bound: it receives what is published to it through the default exchange")
        )
        description = f"Work queue, {bound}. Failed messages go to {queue}.delay and {queue}.dlq."
    channel: dict[str, Any] = {
        "address": queue,
        "title": f"queue {queue}",
        "description": description,
        "messages": {mid: ref("components/messages", mid) for mid in message_ids},
        "bindings": _amqp({"is": "queue", "queue": _queue(queue, vhost, config)}),
    }
    if exchange is not None:
        channel["x-eventrabbit-bindings"] = [{"exchange": exchange, "routingKey": k} for k in keys]
    return channel


def _queue(name: str, vhost: str, config: QueueConfig) -> dict[str, Any]:
    durable = config.durable or config.queue_type == "quorum"
    return {
        "name": name,
        "durable": durable,
        "exclusive": False,
        "autoDelete": False,
        "vhost": vhost,
    }


#: The exchange types the AsyncAPI AMQP channel binding allows.
_BINDING_TYPES = frozenset({"topic", "direct", "fanout", "headers"})


def exchange_channel(name: str, key: str, kind: object, vhost: str) -> dict[str, Any]:
    """Where events published to exchange ``name`` with routing key ``key`` go."""
    exchange: dict[str, Any] = {"name": name, "vhost": vhost}
    if name == "":
        exchange["type"] = "default"
    elif isinstance(kind, ExchangeType) and kind.value in _BINDING_TYPES:
        # ConsumeChannel has made it an ExchangeType; the AMQP binding knows only AMQP's own
        # types, so a plugin's (x-consistent-hash) is left out rather than made invalid.
        exchange["type"] = kind.value
    shown = repr(name) if name else "the default exchange"
    return {
        "address": key,
        "title": f"exchange {shown}" + (f", key {key!r}" if key else ""),
        "bindings": _amqp({"is": "routingKey", "exchange": exchange}),
    }


def reply_channel(message_ids: Iterable[str]) -> dict[str, Any]:
    """The caller's reply address: replies go through the default exchange to ``reply_to``."""
    return {
        "address": None,
        "title": "reply_to",
        "description": "The address a request names in reply_to (for example RabbitMQ's "
        "direct reply-to); replies are published to the default exchange with it as the key.",
        "messages": {mid: ref("components/messages", mid) for mid in message_ids},
        "bindings": _amqp({"is": "routingKey", "exchange": {"name": "", "type": "default"}}),
    }


def receive(channel: str, message: str, reply: str, reply_message: str, handler: str) -> Any:
    """Handling one action from one queue, answering requests that carry ``reply_to``."""
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": ref("channels", channel),
        "messages": [ref(f"channels/{channel}/messages", message)],
        "reply": {
            "address": {"location": REPLY_TO, "description": "the request's reply_to"},
            "channel": ref("channels", reply),
            "messages": [ref(f"channels/{reply}/messages", reply_message)],
        },
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
    }
    if handler:
        operation["description"] = f"Handled by {handler}."
    return operation


def send(channel: str, message: str, description: str, mandatory: bool = False) -> Any:
    """Publishing one kind of message to a channel, confirmed and persistent."""
    binding = {"deliveryMode": 2, "mandatory": mandatory, "timestamp": True}
    return {
        "action": "send",
        "channel": ref("channels", channel),
        "messages": [ref(f"channels/{channel}/messages", message)],
        "description": description,
        "bindings": {"amqp": {**binding, "bindingVersion": AMQP_BINDING}},
    }


def companion_text(queue: str, kind: str, retry: RetryConfig) -> str:
    """What a companion queue of ``queue`` holds."""
    if kind == RETRY_COPY:
        return (
            f"Retry copies of {queue}'s messages wait here {retry.retry_delay_seconds} s "
            f"(x-message-ttl), then the broker dead-letters them back into {queue}."
        )
    return f"Messages of {queue} that failed for good or could not be read."


def servers(urls: Iterable[str]) -> dict[str, Any]:
    """The brokers of ``urls``, without credentials, one entry each."""
    found: dict[tuple[str, str, str], None] = {}
    for url in urls:
        parsed = URL(url)
        host = f"{parsed.host}:{parsed.port}" if parsed.port else str(parsed.host)
        found[(host, parsed.scheme, parsed.path[1:] if len(parsed.path) > 1 else "/")] = None
    result: dict[str, Any] = {}
    for number, (host, scheme, vhost) in enumerate(found, 1):
        name = "broker" if number == 1 else f"broker{number}"
        result[name] = {
            "host": host,
            "protocol": scheme,
            "pathname": vhost,
            "protocolVersion": "0-9-1",
        }
    return result
