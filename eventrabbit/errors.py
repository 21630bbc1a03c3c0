"""Exceptions raised by eventrabbit.

Every exception derives from :class:`EventRabbitError`, with a builtin mixed in where it
means something::

    EventRabbitError
    ├── ConfigurationError (ValueError)      a handler, config or channel that cannot work
    │   └── DuplicateHandlerError            two handlers for one action on one ``events``
    ├── TopologyError                        a queue or exchange that cannot be set up as asked
    ├── BrokerUnavailable (ConnectionError)  no connection to the broker could be made
    │   └── AccessRefused                    the broker refused the login or the virtual host
    ├── PublishError                         the broker did not take a message
    │   ├── UnroutableError                  ``mandatory=True`` and no queue received it
    │   ├── PublishTimeout (TimeoutError)    no confirm came within the timeout
    │   └── ChannelLost                      the channel closed before the confirm
    ├── InvalidMessage                       a body eventrabbit cannot handle (dead-lettered)
    ├── HandlerTimeout (TimeoutError)        a handler ran past ``handler_timeout`` (retried)
    ├── ConsumerTimeout                      a message the broker's consumer_timeout took back
    ├── OrderedQueueStopped                  an ordered queue stopped at a message that failed
    ├── InvalidData (TypeError)              a value that does not fit its type annotation
    │   └── InvalidResult                    a result that does not fit: nothing was published
    ├── ReplayFailed                         a replayed event failed for good; the replay stopped
    └── RPCError                             an RPC call that returned no result
        ├── RPCTimeout (TimeoutError)        no reply within the call's timeout
        ├── RemoteError                      the remote handler failed for good
        ├── ReplyLost                        the RPC channel closed while the call waited
        └── RequestError (PublishError)      the broker did not take the request
            └── UnroutableRequest (UnroutableError)   no queue receives the request

Every way an RPC call (``events.call``) can fail is an :class:`RPCError`; the request errors
are :class:`PublishError` too, so ``except UnroutableError`` catches an unroutable request.

Messages never contain a password: URLs are censored before they are formatted.
"""

from __future__ import annotations


class EventRabbitError(Exception):
    """The root of every exception eventrabbit raises."""


class ConfigurationError(EventRabbitError, ValueError):
    """A handler, configuration value or channel that cannot work as given."""


class DuplicateHandlerError(ConfigurationError):
    """A second handler was registered for an action that already has one."""

    def __init__(self, action: str) -> None:
        super().__init__(f"action {action!r} already has a handler; one action maps to one handler")
        self.action = action


class TopologyError(EventRabbitError):
    """A queue or exchange could not be declared or bound as asked.

    This is a programming or deployment error (for example a queue that already exists with
    other arguments), so ``consume`` raises it instead of retrying.
    """

    def __init__(self, message: str, *, queue: str | None = None, exchange: str | None = None):
        super().__init__(message)
        self.queue = queue
        self.exchange = exchange


class BrokerUnavailable(EventRabbitError, ConnectionError):
    """No connection to the broker could be opened."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url  # always censored


class AccessRefused(BrokerUnavailable):
    """The broker refused the credentials, or the virtual host to this user.

    A deployment error, not a fault to retry: ``consume`` ends with it.
    """


class PublishError(EventRabbitError):
    """The broker did not take a published message (nack, missing exchange, lost channel)."""

    def __init__(
        self,
        message: str,
        *,
        exchange: str = "",
        routing_key: str = "",
        message_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.routing_key = routing_key
        self.message_id = message_id


class UnroutableError(PublishError):
    """A ``mandatory=True`` publish reached no queue."""


class PublishTimeout(PublishError, TimeoutError):
    """The broker's confirm did not arrive within the publish timeout."""


class ChannelLost(PublishError):
    """The channel or connection closed before the broker confirmed; sending again may work.

    A publisher sends such a message again until its ``publish_timeout`` runs out.
    """


class InvalidMessage(EventRabbitError):
    """A body that is not a valid event; the reason goes into ``x-eventrabbit-error``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandlerTimeout(EventRabbitError, TimeoutError):
    """A handler ran longer than its queue's ``QueueConfig.handler_timeout`` and was cancelled.

    A failure like any the handler raises: the message is retried, then dead-lettered, with
    this in ``x-eventrabbit-error``.
    """

    def __init__(self, message: str, *, queue: str, seconds: float) -> None:
        super().__init__(message)
        self.queue = queue
        self.seconds = seconds


class ConsumerTimeout(EventRabbitError):
    """A message was still being handled when the broker's ``consumer_timeout`` closed the
    channel, ``times`` times; it is dead-lettered instead of being handled again.
    """

    def __init__(self, message: str, *, queue: str, times: int) -> None:
        super().__init__(message)
        self.queue = queue
        self.times = times


class OrderedQueueStopped(EventRabbitError):
    """A message on an ordered queue (``QueueConfig(ordered=True, on_exhausted="stop")``)
    still failed after its in-place retries; it was left at the head of the queue, unacked,
    and ``consume`` ended with this error. Fix the cause and consume again: it comes first.
    """

    def __init__(self, message: str, *, queue: str, message_id: str | None) -> None:
        super().__init__(message)
        self.queue = queue
        self.message_id = message_id


class InvalidData(EventRabbitError, TypeError):
    """A value that does not fit its type annotation.

    :param problem: what is wrong (``expected int, got str``).
    :param path: where, inside the value (``items[2].price``); ``""`` for the value itself.
    """

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(problem, path)
        self.problem = problem
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class InvalidResult(InvalidData):
    """A producer's or function's result that does not fit its return annotation; nothing
    was published. ``subject`` names the function and the event it would have published."""

    def __init__(self, subject: str, problem: str, path: str = "") -> None:
        super().__init__(problem, path)
        self.args = (subject, problem, path)
        self.subject = subject

    def __str__(self) -> str:
        return (
            f"{self.subject} does not fit its return annotation, nothing was published: "
            f"{InvalidData.__str__(self)}"
        )


class ReplayFailed(EventRabbitError):
    """A replayed event failed for good (after its in-process retries) and the replay stopped
    before it: fix the handler or the event, and follow again from the checkpoint.

    :param stream: the stream replayed.
    :param offset: the offset of the event that failed; every event before it was handled.
    :param action: its action, when it could be read.
    """

    def __init__(self, message: str, *, stream: str, offset: int, action: str | None) -> None:
        super().__init__(message)
        self.stream = stream
        self.offset = offset
        self.action = action


class RPCError(EventRabbitError):
    """An RPC call that returned no result."""


class RPCTimeout(RPCError, TimeoutError):
    """No reply came within the call's timeout."""

    def __init__(self, message: str, *, action: str) -> None:
        super().__init__(message)
        self.action = action


class RemoteError(RPCError):
    """The remote handler failed for good; ``type`` and ``message`` are what it reported."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.type = error_type
        self.message = message


class ReplyLost(RPCError):
    """The RPC channel closed while the call waited: its reply can never arrive.

    The request may still have been handled; calling again may handle it twice.
    """


class RequestError(RPCError, PublishError):
    """The broker did not take an RPC request (no connection, nack, missing exchange, no
    confirm within ``publish_timeout``). Nothing was handled."""


class UnroutableRequest(RequestError, UnroutableError):
    """No queue receives the request: no server consumes it."""
