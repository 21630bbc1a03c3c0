"""How a message dies in the in-memory broker: the reasons, and the headers it gets.

Theory of operation
-------------------
When a queue dead-letters a message (it expired, a consumer rejected it, it came back more
often than a quorum queue's ``x-delivery-limit``, or a length limit dropped or refused it),
RabbitMQ records the death in the message's headers before routing it on; :func:`record_death`
does what RabbitMQ 3.10 does (:mod:`.version`):

- ``x-death`` is a list of tables, newest first, one per (queue, reason): a repeated death
  counts up its table's ``count`` (nothing else of it changes) and moves it to the front. A
  list of more than one table is first grouped by (queue, reason), the first table of each
  kept, in reverse order (:func:`deaths_after`). An ``x-death`` that is not a list is replaced
  by a fresh one; entries that are not tables are left out (RabbitMQ 3.10's queue fails on
  them and loses its messages — not something to emulate).
- ``x-first-death-reason``/``-queue``/``-exchange`` are set, overwriting a publisher's, only
  when the message had no ``x-death`` header at all (not even an empty or broken one).
- ``x-last-death-*`` exist from RabbitMQ 3.13 on only.

Where the copy goes is :mod:`eventrabbit.testing.flow`'s business; :func:`died_in` is
RabbitMQ's rule against dead-letter cycles.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pamqp import commands as spec

from .messages import StoredMessage
from .version import RABBITMQ_VERSION

#: RabbitMQ's dead-letter history header: a list of tables, newest first.
X_DEATH = "x-death"
#: Why a message was dead-lettered.
EXPIRED = "expired"
REJECTED = "rejected"
DELIVERY_LIMIT = "delivery_limit"
MAXLEN = "maxlen"
#: The RabbitMQ version from which dead-lettering sets ``x-last-death-*``.
LAST_DEATH_SINCE = (3, 13)


def record_death(
    properties: spec.Basic.Properties,
    message: StoredMessage,
    queue: str,
    reason: str,
    routing_keys: list[str] | None = None,
) -> spec.Basic.Properties:
    """Add RabbitMQ's dead-letter headers to ``properties`` and drop its ``expiration``.

    :param routing_keys: what ``x-death`` lists as its ``routing-keys`` (default: the
        message's routing key).
    """
    headers: dict[str, Any] = dict(properties.headers or {})
    entry: dict[str, Any] = {
        "count": 1,
        "reason": reason,
        "queue": queue,
        "time": datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0),
        "exchange": message.exchange,
        "routing-keys": routing_keys or [message.routing_key],
    }
    if properties.expiration:
        entry["original-expiration"] = properties.expiration
    ours = {"reason": reason, "queue": queue, "exchange": message.exchange}
    if X_DEATH not in headers:
        headers.update({f"x-first-death-{name}": value for name, value in ours.items()})
    if RABBITMQ_VERSION >= LAST_DEATH_SINCE:
        headers.update({f"x-last-death-{name}": value for name, value in ours.items()})
    headers[X_DEATH] = deaths_after(headers.get(X_DEATH), entry)
    properties.headers = headers
    properties.expiration = None
    return properties


def deaths_after(x_death: object, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``x-death`` list after a death ``entry`` (a new table) joins ``x_death``, the
    header as it was (anything, or ``None``)."""
    tables = (
        [dict(d) for d in x_death if isinstance(d, Mapping)] if isinstance(x_death, list) else []
    )
    if len(tables) > 1:
        # RabbitMQ merges tables from before it kept one per (queue, reason): first one wins.
        kept: dict[tuple[object, object], dict[str, Any]] = {}
        for table in tables:
            kept.setdefault((table.get("queue"), table.get("reason")), table)
        tables = list(reversed(kept.values()))
    key = (entry["queue"], entry["reason"])
    same = next((t for t in tables if (t.get("queue"), t.get("reason")) == key), None)
    if same is None:
        return [dict(entry), *tables]
    count = same.get("count")
    same["count"] = count + 1 if isinstance(count, int) and not isinstance(count, bool) else 1
    return [same, *(t for t in tables if t is not same)]


def died_in(properties: spec.Basic.Properties, queue: str) -> bool:
    """Whether dead-lettering into ``queue`` would be a cycle RabbitMQ drops.

    That is: the message already died in ``queue`` and was never rejected since (only
    expiries and limits moved it), so it would go round forever without a consumer's say.
    """
    deaths = dict(properties.headers or {}).get(X_DEATH)
    for death in deaths if isinstance(deaths, list) else []:
        if not isinstance(death, Mapping) or death.get("reason") == REJECTED:
            return False
        if death.get("queue") == queue:
            return True
    return False
