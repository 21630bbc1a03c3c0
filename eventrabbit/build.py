"""``build_event_dependencies``: the one call that wires a service's pieces together."""

from __future__ import annotations

from collections.abc import Sequence

from .checks import check_seconds
from .common import QueueConfig, ReconnectConfig, RetryConfig
from .confirm import DEFAULT_PUBLISH_TIMEOUT
from .connection import as_urls
from .errors import ConfigurationError
from .events import Events
from .fanout import HookSet
from .handle import Handle
from .hooks import Hooks
from .publisher import Publisher
from .registry import Registry
from .rpc import RPCClient


def build_event_dependencies(
    url: str | Sequence[str],
    idle_timeout: float | None = 300,
    retry_config: RetryConfig | None = None,
    queue_config: QueueConfig | None = None,
    *,
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    reconnect: ReconnectConfig | None = None,
    hooks: Sequence[Hooks] | None = None,
) -> tuple[Events, Handle]:
    """Make the decorators and the consumer of one service.

    :param url: the broker for publishing (``amqp://`` or ``amqps://``), or a list of a
        cluster's node URLs; each :class:`ConsumeChannel` names its own.
    :param idle_timeout: close the publishing connection after this many seconds without a
        publish; ``None`` or ``0`` keeps it open.
    :param retry_config: how failing handlers are retried (default: forever, every 5 s).
    :param queue_config: the default settings of every consumed queue.
    :param publish_timeout: seconds a publish may take in all: waiting for a connection,
        sending again after a lost connection, and the broker's confirm.
    :param reconnect: the backoff between a consumer's reconnect attempts.
    :param hooks: instrumentation (:class:`~eventrabbit.hooks.Hooks` subclasses), called in
        order around deliveries, publishes and calls; none by default, at no cost.
    :raises ConfigurationError: a URL that is not ``amqp://`` or ``amqps://``, a timeout that
        is not a finite number of seconds (``idle_timeout`` 0 or more, ``publish_timeout`` more
        than 0), a config of the wrong class, or a hook that is not a ``Hooks``.
    """
    as_urls(url)
    if idle_timeout is not None:
        check_seconds("build_event_dependencies(idle_timeout)", idle_timeout)
    check_seconds("build_event_dependencies(publish_timeout)", publish_timeout, positive=True)
    _check_config("retry_config", retry_config, RetryConfig)
    _check_config("queue_config", queue_config, QueueConfig)
    _check_config("reconnect", reconnect, ReconnectConfig)
    hook_set = _hook_set(hooks)
    registry = Registry()
    publisher = Publisher(
        url, idle_timeout=idle_timeout, publish_timeout=publish_timeout, hooks=hook_set
    )
    rpc = RPCClient(url, publish_timeout=publish_timeout, hooks=hook_set)
    events = Events(registry, publisher, rpc)
    handle = Handle(
        events,
        retry_config=retry_config or RetryConfig(),
        queue_config=queue_config or QueueConfig(),
        reconnect=reconnect or ReconnectConfig(),
        hooks=hook_set,
    )
    return events, handle


def _check_config(name: str, value: object, cls: type) -> None:
    if value is not None and not isinstance(value, cls):
        raise ConfigurationError(
            f"build_event_dependencies({name}) must be a {cls.__name__} or None, "
            f"not {type(value).__name__}"
        )


def _hook_set(hooks: Sequence[Hooks] | None) -> HookSet | None:
    """The hooks to call, or ``None`` when there are none (the hot path then pays nothing)."""
    if hooks is None:
        return None
    if isinstance(hooks, Hooks) or not isinstance(hooks, Sequence):
        raise ConfigurationError("build_event_dependencies(hooks) must be a list of Hooks")
    for hook in hooks:
        if not isinstance(hook, Hooks):
            raise ConfigurationError(
                f"build_event_dependencies(hooks): {type(hook).__name__} is not a "
                "subclass of eventrabbit.Hooks"
            )
    return HookSet(hooks) if hooks else None
