"""Ordered queues, the pure part: what ``QueueConfig(ordered=True)`` means and what becomes of
a failing message on one (:mod:`eventrabbit.ordered` does the waiting).

Theory of operation
-------------------
An ordered queue is consumed one message at a time (prefetch 1): the broker sends the next
only after the current one is acked. The normal retry path — a copy to ``<queue>.delay``, the
original acked — would let later messages overtake the failing one, so an ordered queue
retries *in place* instead: the message stays unacked, the consumer waits
``retry_delay_seconds`` and runs the handler again, up to ``max_retries`` times (``-1``: until
it succeeds, blocking the queue). :func:`next_step` decides after each failure:

- :class:`Wait` — retry in place after ``seconds``;
- :class:`GiveUp` — retries are exhausted (or retrying cannot help: bad input, a message the
  broker's consumer timeout took back too often). With ``on_exhausted="dead-letter"`` the
  message goes to ``<queue>.dlq`` and the queue goes on with the next one; with
  ``on_exhausted="stop"`` it stays unacked at the head of the queue (nothing overtakes it) and
  the consume ends with :class:`~eventrabbit.errors.OrderedQueueStopped` — bad input is
  dead-lettered in both modes, since no handler can ever take it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError, ConsumerTimeout, InvalidMessage

#: ``on_exhausted``: dead-letter the message whose in-place retries ran out, go on.
DEAD_LETTER = "dead-letter"
#: ``on_exhausted``: leave it at the head of the queue and end the consume.
STOP = "stop"
#: The values ``QueueConfig.on_exhausted`` accepts.
ON_EXHAUSTED = (DEAD_LETTER, STOP)


@dataclass(slots=True, frozen=True)
class Wait:
    """Run the handler again after ``seconds``, as in-place retry number ``attempt``."""

    seconds: float
    attempt: int


@dataclass(slots=True, frozen=True)
class GiveUp:
    """No more retries: dead-letter the message, or (``stop``) leave it and stop the queue."""

    stop: bool


def next_step(
    exc: BaseException, done: int, max_retries: int, delay: float, on_exhausted: str
) -> Wait | GiveUp:
    """What to do after an attempt raised ``exc``, ``done`` in-place retries in
    (``max_retries`` and ``delay`` as in :class:`~eventrabbit.common.RetryConfig`)."""
    if isinstance(exc, InvalidMessage | ConsumerTimeout):
        return GiveUp(stop=False)  # retrying cannot fix it; stopping would block for good
    if max_retries == -1 or done < max_retries:
        return Wait(delay, done + 1)
    return GiveUp(stop=on_exhausted == STOP)


def check_ordering(ordered: object, on_exhausted: object, single_active: object) -> bool:
    """Check ``QueueConfig``'s ordering fields; return whether the queue is ordered.

    :raises ConfigurationError: a value of the wrong type, or ``on_exhausted`` other than the
        default on a queue that is not ordered.
    """
    for name, value in (("ordered", ordered), ("single_active_consumer", single_active)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"QueueConfig.{name}={value!r} must be True or False")
    if on_exhausted not in ON_EXHAUSTED:
        raise ConfigurationError(
            f"QueueConfig.on_exhausted={on_exhausted!r} must be one of {list(ON_EXHAUSTED)}"
        )
    if on_exhausted == STOP and not ordered:
        raise ConfigurationError("QueueConfig.on_exhausted='stop' needs ordered=True")
    return bool(ordered)
