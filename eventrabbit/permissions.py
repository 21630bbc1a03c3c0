"""Permissions the broker refuses (403 ACCESS_REFUSED), told in RabbitMQ's permission model.

RabbitMQ's refusal names the queue or exchange but not the permission; which one was missing
follows from the operation refused and the kind of resource it names. A refusal is a
:class:`TopologyError`: a deployment error to fix, never a fault to retry.
"""

from __future__ import annotations

import re

from .errors import TopologyError

#: RabbitMQ's name for the default exchange in permissions and in its errors.
DEFAULT_EXCHANGE_RESOURCE = "amq.default"

# The resource a 403 names: "ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused ...".
_REFUSED_RESOURCE = re.compile(r"access to (queue|exchange) '(.*)' in vhost")
# What an operation needs of each kind of resource it touches, in RabbitMQ's permission model.
_PERMISSIONS = {
    ("declare", "queue"): "configure",
    ("declare", "exchange"): "configure",
    ("bind", "queue"): "write",
    ("bind", "exchange"): "read",
    ("consume", "queue"): "read",
    ("publish", "exchange"): "write",
}


def refused(
    exc: BaseException,
    operation: str,
    *,
    queue: str | None = None,
    exchange: str | None = None,
    permission: str | None = None,
) -> TopologyError:
    """The :class:`TopologyError` for a permission the broker refused (403 ACCESS_REFUSED).

    Also for code that meets the refusal later (``basic.consume``, a retry publish).

    :param exc: the broker's refusal; its text names the queue or exchange refused.
    :param operation: what was refused: ``declare``, ``bind``, ``consume`` or ``publish``.
    :param queue: the work queue being set up or consumed.
    :param exchange: its exchange, if any.
    :param permission: the permission refused, when the operation does not tell it (RabbitMQ's
        reply names the resource but not the permission).
    """
    text = str(exc)
    found = _REFUSED_RESOURCE.search(text)
    kind, name = found.groups() if found else ("queue" if exchange is None else "exchange", "")
    name = name or (queue if kind == "queue" else exchange) or ""
    permission = permission or _PERMISSIONS.get((operation, kind), "some")
    if name == DEFAULT_EXCHANGE_RESOURCE:
        permission, why = "write", " (retry copies, dead letters and replies go through it)"
    else:
        why = ""
    return TopologyError(
        f"consuming queue {queue!r} needs {permission} permission on {kind} {name!r}{why} to "
        f"{operation}, which the broker refuses this user ({text}); grant it (rabbitmqctl "
        "set_permissions) and start consuming again",
        queue=queue,
        exchange=name if kind == "exchange" else exchange,
    )
