"""Declaring a quorum work queue: always with a dead-letter target, and reusing one that was
declared without it.

Theory of operation
-------------------
From RabbitMQ 4.0 every quorum queue has a delivery limit (20 unless set), and a message
delivered more often than that is dead-lettered — or dropped, when the queue has no
dead-letter target. So eventrabbit gives every quorum work queue ``<queue>.dlq`` as its
target, whether or not ``delivery_limit`` is set.

Earlier eventrabbit versions gave the target only with a ``delivery_limit``. Redeclaring such
a queue with the target is refused (406, ``inequivalent arg 'x-dead-letter-exchange' ...
current is none``), and a queue's arguments cannot change. That queue is used as it is, with
a warning that says how to give it a target (a policy): but only when a second declare,
without the dead-letter arguments, shows that nothing else differs. Each declare goes on a
channel of its own, since a 406 closes the channel it comes on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiormq
import aiormq.abc

from .permissions import declare_refused, refused

log = logging.getLogger(__name__)

#: The declare arguments that name a queue's dead-letter target.
DEAD_LETTER_ARGUMENTS = ("x-dead-letter-exchange", "x-dead-letter-routing-key")

# RabbitMQ's 406 for a redeclare that adds a dead-letter target to a queue without one.
_NO_TARGET = re.compile(
    r"inequivalent arg 'x-dead-letter-(exchange|routing-key)'.*current is none", re.IGNORECASE
)


def lacks_dead_letter_target(refusal: BaseException) -> bool:
    """Whether a 406 refused a declare because the queue exists without a dead-letter target."""
    return bool(_NO_TARGET.search(str(refusal)))


async def declare_quorum_queue(
    channel: aiormq.abc.AbstractChannel,
    queue: str,
    arguments: dict[str, Any],
    *,
    reuse_without_target: bool,
) -> None:
    """Declare the quorum work queue ``queue`` with ``arguments`` (its dead-letter target
    among them), on channels of ``channel``'s connection.

    :param reuse_without_target: use an existing ``queue`` that has no dead-letter target (and
        otherwise these arguments) as it is, with a warning; ``False`` when a setting that
        needs the target (``delivery_limit``) was asked for.
    :raises TopologyError: the queue exists with other arguments, a limit or a permission.
    """
    try:
        await _declare_alone(channel, queue, arguments)
        return
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        if not reuse_without_target or not lacks_dead_letter_target(exc):
            raise declare_refused(exc, queue, queue=queue) from None
    plain = {k: v for k, v in arguments.items() if k not in DEAD_LETTER_ARGUMENTS}
    try:
        await _declare_alone(channel, queue, plain)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise declare_refused(exc, queue, queue=queue) from None
    log.warning(
        "quorum queue %r has no dead-letter target: RabbitMQ 4.0+ drops a message delivered "
        "more often than its delivery limit (20 by default). Give it one with a policy "
        "(dead-letter-exchange '', dead-letter-routing-key %r) or delete and redeclare it; "
        "consuming it as it is",
        queue,
        arguments.get("x-dead-letter-routing-key"),
        extra={"queue": queue},
    )


async def _declare_alone(
    channel: aiormq.abc.AbstractChannel, queue: str, arguments: dict[str, Any]
) -> None:
    probe = await channel.connection.channel(publisher_confirms=False)
    try:
        await probe.queue_declare(queue, durable=True, arguments=arguments)
    except aiormq.exceptions.ChannelAccessRefused as exc:
        # A queue that dead-letters needs read permission on itself too (see topology).
        raise refused(exc, "declare", queue=queue, permission="configure or read") from None
    finally:
        if not probe.is_closed:
            await probe.close()
