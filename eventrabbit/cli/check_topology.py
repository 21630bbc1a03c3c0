"""The service half of ``eventrabbit check``: would ``consume`` set up each channel cleanly?

Theory of operation
-------------------
For each ``ConsumeChannel``, the exchange and the queues ``consume`` would declare (the work
queue, ``.delay`` unless retries are off, ``.dlq``) are looked up with a *passive* declare,
which never creates anything: a missing queue (or an exchange the channel has a type for) is
fine, ``consume`` will declare it. Only what exists is then declared again with exactly the
settings ``consume`` would use — the arguments come from :mod:`eventrabbit.topology`'s own
functions — on a channel of its own; a declare that matches what exists changes nothing, one
that does not is refused (406) and names the setting that differs. Between the passive and the
active declare someone else could delete the queue; the active declare would then create it as
the service would have. Bindings are not checked (AMQP cannot list them): ``consume`` binds
anyway, and binding again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiormq
import aiormq.abc

from eventrabbit import ConsumeChannel, QueueConfig, RetryConfig, TopologyError
from eventrabbit.quorum import DEAD_LETTER_ARGUMENTS, lacks_dead_letter_target
from eventrabbit.topology import (
    _reuse_existing,  # consume's own decision on an exchange that exists with other settings
    dead_letter_queue_arguments,
    dead_letter_queue_name,
    delay_queue_arguments,
    delay_queue_name,
    work_queue_arguments,
)

from .check_broker import attempt


@dataclass(slots=True)
class Finding:
    """One exchange or queue a channel uses, as the broker has it."""

    kind: str  #: ``exchange`` or ``queue``
    name: str
    role: str  #: ``exchange``, ``work``, ``delay`` or ``dead letters``
    state: str  #: ``exists``, ``missing``, ``clash``, ``refused``, ``locked``, ``error``
    ok: bool  #: whether ``consume`` would get past it
    detail: str
    messages: int | None = None
    consumers: int | None = None
    arguments: dict[str, Any] | None = None  #: what ``consume`` declares a queue with


async def check_channel(
    connection: aiormq.abc.AbstractConnection,
    target: ConsumeChannel,
    config: QueueConfig,
    retry: RetryConfig,
    seen: set[str],
) -> list[Finding]:
    """The findings of one channel; exchanges named in ``seen`` are not looked at again."""
    findings = []
    exchange = target.exchange_name
    if exchange and exchange not in seen:
        seen.add(exchange)
        findings.append(await _exchange(connection, target, exchange))
    queue = target.queue_name
    queues = [(queue, "work", work_queue_arguments(queue, config))]
    if retry.max_retries != 0:
        delay = delay_queue_arguments(queue, retry.retry_delay_seconds, config)
        queues.append((delay_queue_name(queue), "delay", delay))
    queues.append(
        (dead_letter_queue_name(queue), "dead letters", dead_letter_queue_arguments(config))
    )
    for name, role, arguments in queues:
        findings.append(await _queue(connection, name, role, config.durable, arguments))
    return findings


async def _exchange(
    connection: aiormq.abc.AbstractConnection, target: ConsumeChannel, name: str
) -> Finding:
    kind = target.exchange_type

    async def passive(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.exchange_declare(name, passive=True)

    async def active(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.exchange_declare(
            name, exchange_type=str(kind), durable=target.exchange_durable
        )

    found = Finding("exchange", name, "exchange", "exists", True, "exists")
    _, error = await attempt(connection, passive)
    declared = kind is not None and not name.startswith("amq.")
    if isinstance(error, aiormq.exceptions.ChannelNotFoundEntity):
        if declared:
            found.state, found.detail = "missing", f"missing: consume declares it ({kind})"
        else:
            found.state, found.ok = "missing", False
            found.detail = "missing, and the channel has no exchange_type: consume would fail"
        return found
    if error is not None:
        return _failed(found, error)
    if not declared:
        found.detail = "exists (consume binds to it as it is)"
        return found
    _, error = await attempt(connection, active)
    if isinstance(error, aiormq.exceptions.ChannelPreconditionFailed):
        try:
            _reuse_existing(name, str(kind), str(error))
        except TopologyError as exc:
            found.state, found.ok, found.detail = "clash", False, str(exc)
        else:
            found.detail = f"exists with other settings, used as it is ({error})"
        return found
    if error is not None:
        return _failed(found, error)
    found.detail = f"exists, matches ({kind})"
    return found


async def _queue(
    connection: aiormq.abc.AbstractConnection,
    name: str,
    role: str,
    durable: bool,
    arguments: dict[str, Any],
) -> Finding:
    async def passive(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_declare(name, passive=True)

    async def active(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_declare(name, durable=durable, arguments=arguments or None)

    found = Finding("queue", name, role, "exists", True, "exists", arguments=arguments)
    ok, error = await attempt(connection, passive)
    if isinstance(error, aiormq.exceptions.ChannelNotFoundEntity):
        found.state, found.detail = "missing", "missing: consume declares it"
        return found
    if error is not None or ok is None:
        return _failed(found, error)
    found.messages, found.consumers = ok.message_count, ok.consumer_count
    _, error = await attempt(connection, active)
    if isinstance(error, aiormq.exceptions.ChannelPreconditionFailed):
        if await _reused_without_target(connection, name, role, durable, arguments, error):
            found.detail = (
                "exists without a dead-letter target (an earlier eventrabbit declared it): "
                "consume uses it as it is and warns; give it Q.dlq as its target by policy"
            )
            return found
        found.state, found.ok = "clash", False
        found.detail = f"exists with other settings than consume declares: {error}"
        return found
    if error is not None:
        return _failed(found, error)
    found.detail = "exists, matches"
    return found


async def _reused_without_target(
    connection: aiormq.abc.AbstractConnection,
    name: str,
    role: str,
    durable: bool,
    arguments: dict[str, Any],
    refusal: BaseException,
) -> bool:
    """Whether ``consume`` would use this quorum work queue as it is: it lacks only the
    dead-letter target, and no ``delivery_limit`` needs one (see :mod:`eventrabbit.quorum`)."""
    if role != "work" or "x-delivery-limit" in arguments or not lacks_dead_letter_target(refusal):
        return False
    rest = {k: v for k, v in arguments.items() if k not in DEAD_LETTER_ARGUMENTS}

    async def without_target(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_declare(name, durable=durable, arguments=rest or None)

    _, error = await attempt(connection, without_target)
    return error is None


def _failed(found: Finding, error: BaseException | None) -> Finding:
    """A lookup or declare the broker refused for another reason than a clash."""
    found.ok = False
    if isinstance(error, aiormq.exceptions.ChannelAccessRefused):
        found.state, found.detail = "refused", f"the broker refuses this user: {error}"
    elif isinstance(error, aiormq.exceptions.ChannelLockedResource):
        found.state = "locked"
        found.detail = f"exclusive to another connection, consume would fail: {error}"
    else:
        found.state, found.detail = "error", f"{type(error).__name__}: {error}"
    return found
