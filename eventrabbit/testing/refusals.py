"""RabbitMQ's refusals, in its words: the ``aiormq.exceptions`` errors its replies become.

404 ``ChannelNotFoundEntity``, 403 ``ChannelAccessRefused``, 405 ``ChannelLockedResource``
and 406 ``ChannelPreconditionFailed`` close the channel; 503 ``ConnectionCommandInvalid`` and
540 ``ConnectionNotImplemented`` (what this broker does not emulate) close the connection
(:mod:`.guard` does the closing). The texts are RabbitMQ 3.10's, as
tests on the real broker see them.
"""

from __future__ import annotations

from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelLockedResource,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    ConnectionInternalError,
    ConnectionNotImplemented,
)

#: RabbitMQ's deprecated features that 4.3 denies by default and the in-memory broker can deny
#: too (:meth:`~eventrabbit.testing.MemoryBroker.deny`): non-durable, non-exclusive queues and
#: ``basic.qos`` with ``global``.
TRANSIENT_NONEXCL_QUEUES = "transient_nonexcl_queues"
GLOBAL_QOS = "global_qos"
DEPRECATED_FEATURES = frozenset({TRANSIENT_NONEXCL_QUEUES, GLOBAL_QOS})


def not_found(kind: str, name: str) -> ChannelNotFoundEntity:
    """404: no ``kind`` (``"queue"``, ``"exchange"``) named ``name``."""
    return ChannelNotFoundEntity(f"NOT_FOUND - no {kind} '{name}' in vhost '/'")


def reserved(kind: str, name: str) -> ChannelAccessRefused:
    """403: a name that starts with ``amq.``, which only the broker may give."""
    return ChannelAccessRefused(
        f"ACCESS_REFUSED - {kind} name '{name}' contains reserved prefix 'amq.*'"
    )


def default_exchange_refused() -> ChannelAccessRefused:
    """403: something done to the default exchange that may not be (declare, bind)."""
    return ChannelAccessRefused("ACCESS_REFUSED - operation not permitted on the default exchange")


def locked(queue: str) -> ChannelLockedResource:
    """405: another connection's exclusive queue."""
    return ChannelLockedResource(
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'"
    )


def precondition_failed(reason: str) -> ChannelPreconditionFailed:
    """406, for ``reason``."""
    return ChannelPreconditionFailed(f"PRECONDITION_FAILED - {reason}")


def deprecated(feature: str) -> ConnectionInternalError:
    """541, which closes the connection: a deprecated feature denied, in RabbitMQ 4.3's words."""
    return ConnectionInternalError(
        f"INTERNAL_ERROR - Feature `{feature}` is deprecated.\n"
        "By default, this feature is not permitted anymore."
    )


def not_implemented(what: str) -> ConnectionNotImplemented:
    """540, which closes the connection: ``what`` RabbitMQ has and this broker does not
    emulate — refused loudly, never ignored."""
    return ConnectionNotImplemented(f"NOT_IMPLEMENTED - the in-memory broker has no {what}")
