"""How a message dies in the in-memory broker: the reasons, and the headers it gets.

When a queue dead-letters a message (it expired, a consumer rejected it, or it came back
more often than a quorum queue's ``x-delivery-limit``), RabbitMQ records the death in the
message's headers before routing it on; :func:`record_death` does the same. Where the copy
goes is :mod:`eventrabbit.testing.flow`'s business; :func:`died_in` is RabbitMQ's rule
against dead-letter cycles.
"""

from __future__ import annotations

import datetime
from typing import Any

from pamqp import commands as spec

from .messages import StoredMessage

#: RabbitMQ's dead-letter history header: a list of tables, newest first.
X_DEATH = "x-death"
#: Why a message was dead-lettered.
EXPIRED = "expired"
REJECTED = "rejected"
DELIVERY_LIMIT = "delivery_limit"


def record_death(
    properties: spec.Basic.Properties, message: StoredMessage, queue: str, reason: str
) -> spec.Basic.Properties:
    """Add RabbitMQ's dead-letter headers to ``properties`` and drop its ``expiration``.

    ``x-death`` gets an entry per (queue, reason), newest first, counting repeats;
    ``x-first-death-*`` is set once, ``x-last-death-*`` every time.
    """
    headers: dict[str, Any] = dict(properties.headers or {})
    deaths: list[dict[str, Any]] = [dict(d) for d in headers.get(X_DEATH) or [] if d]
    entry = next((d for d in deaths if d.get("queue") == queue and d.get("reason") == reason), None)
    if entry is not None:
        deaths.remove(entry)
        entry["count"] = int(entry.get("count", 0)) + 1
    else:
        entry = {
            "count": 1,
            "reason": reason,
            "queue": queue,
            "time": datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0),
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
        if properties.expiration:
            entry["original-expiration"] = properties.expiration
    headers[X_DEATH] = [entry, *deaths]
    for prefix, only_first in (("x-first-death-", True), ("x-last-death-", False)):
        for name, value in (("reason", reason), ("queue", queue), ("exchange", message.exchange)):
            if not only_first or prefix + name not in headers:
                headers[prefix + name] = value
    properties.headers = headers
    properties.expiration = None
    return properties


def died_in(properties: spec.Basic.Properties, queue: str) -> bool:
    """Whether dead-lettering into ``queue`` would be a cycle RabbitMQ drops.

    That is: the message already died in ``queue`` and was never rejected since (only
    expiries and limits moved it), so it would go round forever without a consumer's say.
    """
    headers: dict[str, Any] = dict(properties.headers or {})
    for death in headers.get(X_DEATH) or []:
        if death.get("reason") == REJECTED:
            return False
        if death.get("queue") == queue:
            return True
    return False
