"""What the broker refuses while a queue is set up, told so that it can be fixed: permissions
(403 ACCESS_REFUSED, in RabbitMQ's permission model), limits (406 PRECONDITION_FAILED: a
vhost's or user's ``max-queues``) and refusals that close the whole connection (a deprecated
feature RabbitMQ 4.3 denies, such as transient non-exclusive queues).

RabbitMQ's 403 names the queue or exchange but not the permission; which one was missing
follows from the operation refused and the kind of resource it names. Every refusal is a
:class:`TopologyError`: a deployment error to fix, never a fault to retry.
"""

from __future__ import annotations

import re

import aiormq
import aiormq.abc
from pamqp import commands as spec

from .errors import TopologyError

#: The ``type`` property of the empty message that checks, when consuming starts, that the
#: user may write to the default exchange. It has routing key ``""``, which names no queue.
WRITE_CHECK_TYPE = "eventrabbit.write-check"
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


#: A 406 for a declare that names an argument differing from the existing queue's.
INEQUIVALENT = "inequivalent arg"
#: What a connection-level refusal of a declare is (530, 540, 541, 503, 502, 506); a
#: 320 CONNECTION_FORCED (an operator, a node going down) or a lost socket is not one.
CONNECTION_REFUSALS = (
    aiormq.exceptions.ConnectionNotAllowed,
    aiormq.exceptions.ConnectionNotImplemented,
    aiormq.exceptions.ConnectionInternalError,
    aiormq.exceptions.ConnectionCommandInvalid,
    aiormq.exceptions.ConnectionSyntaxError,
    aiormq.exceptions.ConnectionResourceError,
)
# RabbitMQ 4.3's name for the deprecated feature QueueConfig(durable=False) needs.
_TRANSIENT_FEATURE = "transient_nonexcl_queues"


def declare_refused(exc: BaseException, name: str, *, queue: str) -> TopologyError:
    """The :class:`TopologyError` for a 406 to declaring ``name`` (the work queue ``queue``
    or a companion): a clash with the queue as it exists, or a limit the broker enforces."""
    if INEQUIVALENT in str(exc):
        return TopologyError(
            f"queue {name!r} exists with other arguments than eventrabbit declares ({exc}); "
            "delete it or consume it with matching settings",
            queue=name,
        )
    hint = (
        "raise the limit (rabbitmqctl set_vhost_limits / set_user_limits) or delete unused queues"
        if "limit" in str(exc)
        else "fix what it names"
    )
    return TopologyError(
        f"consuming queue {queue!r}: the broker refused to declare queue {name!r} ({exc}); "
        f"{hint}, and start consuming again",
        queue=queue,
    )


def connection_refused(exc: BaseException, *, queue: str) -> TopologyError:
    """The :class:`TopologyError` for a refusal that closed the connection while ``queue``
    was being set up (RabbitMQ answers some refusals so: it is not a fault to retry)."""
    text = str(exc)
    hint = "fix what it names and start consuming again"
    if _TRANSIENT_FEATURE in text:
        hint = (
            "RabbitMQ 4.3 refuses non-durable queues that are not exclusive, which "
            "QueueConfig(durable=False) declares: use durable=True, or permit the deprecated "
            f"feature on every node (deprecated_features.permit.{_TRANSIENT_FEATURE} = true)"
        )
    return TopologyError(
        f"consuming queue {queue!r}: the broker refused setting it up and closed the "
        f"connection ({text}); {hint}",
        queue=queue,
    )


async def check_default_exchange_write(channel: aiormq.abc.AbstractChannel, queue: str) -> None:
    """Publish an empty message that no queue receives, to learn now rather than at the first
    failed message whether the user may write to the default exchange.

    RabbitMQ checks that permission only when a message is published, and a refusal then
    would close the channel with the failed message still unacked.
    """
    if not isinstance(channel, aiormq.Channel):
        # Only RabbitMQ has permissions to refuse; a stand-in such as eventrabbit.testing's
        # in-memory channel would just record a message that went nowhere.
        return
    try:
        await channel.basic_publish(
            b"",
            exchange="",  # the default exchange
            routing_key="",  # no queue has an empty name: the message goes nowhere
            properties=spec.Basic.Properties(message_type=WRITE_CHECK_TYPE),
        )
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise refused(exc, "publish", queue=queue) from None
