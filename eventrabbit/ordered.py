"""In-place retries of an ordered queue's consumer (the rules: :mod:`eventrabbit.ordering`).

Theory of operation
-------------------
:meth:`InPlace.run` stands in for :func:`~eventrabbit.dispatch.dispatch` in an ordered
queue's :class:`~eventrabbit.consumer.QueueConsumer`: it runs the handler, and after a
failure waits ``retry_delay_seconds`` with the message unacked and runs it again — each
attempt bounded by ``handler_timeout``. What it returns is the result (the consumer acks);
what it raises is handled as one failure would be:

- the last failure, when retries are exhausted or cannot help: the consumer dead-letters it;
- :class:`~eventrabbit.errors.OrderedQueueStopped`, when the message must stay unacked:
  ``on_exhausted="stop"`` halted the queue, or the consume is stopping (the wait ends at once;
  that one never reaches a caller). The broker puts the message
  back at the head of the queue when the channel closes, so it comes first again.

Stopping sends no ``basic.cancel``: with a single active consumer the broker would make the
next consumer active at once and give it the next message before this one was put back.
Closing the channel with the message unacked returns it first.

A message held through its retries counts towards the broker's ``consumer_timeout``: the
time of all attempts and waits must stay below it, or the broker closes the channel and
redelivers the message — which starts its retries afresh (the count lives in this process).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiormq.abc import DeliveredMessage

from .common import QueueConfig, RetryConfig
from .dispatch import dispatch
from .errors import OrderedQueueStopped
from .failures import describe
from .fanout import DeliveryRecord
from .ordering import GiveUp, next_step
from .registry import Handler
from .timeouts import bounded

log = logging.getLogger(__name__)

# What a handler may raise that is not a failure of the message: the process is stopping.
_STOP_PROCESS = (KeyboardInterrupt, SystemExit)


def in_place(
    queue: str, config: QueueConfig, retry: RetryConfig, broken: asyncio.Event
) -> InPlace | None:
    """The :class:`InPlace` of a consumer of ``queue``, ``None`` unless it is ordered.

    :param broken: the consumer's; set when the queue halts (``on_exhausted="stop"``).
    """
    return InPlace(queue, config, retry, broken) if config.ordered else None


class InPlace:
    """Runs the handlers of one ordered queue, retrying failures in place."""

    def __init__(
        self, queue: str, config: QueueConfig, retry: RetryConfig, broken: asyncio.Event
    ) -> None:
        self._queue = queue
        self._limit = config.handler_timeout
        self._on_exhausted = config.on_exhausted
        self._retry = retry
        #: The retry config of its failure copies: dead letters only.
        self.copies = RetryConfig(0, retry.retry_delay_seconds)
        self._stopping = asyncio.Event()
        #: Why the queue stopped (``on_exhausted="stop"``), once it did.
        self.halted: OrderedQueueStopped | None = None
        self._broken = broken

    def stop(self) -> None:
        """The consume is stopping: a message waiting for its retry stays unacked."""
        self._stopping.set()

    async def run(
        self,
        handlers: dict[str, Handler],
        message: DeliveredMessage,
        max_body: int,
        record: DeliveryRecord | None = None,
    ) -> Any:
        """The handler's result, after as many attempts as it took (a stand-in for
        :func:`~eventrabbit.dispatch.dispatch`, whose arguments it takes).

        :raises OrderedQueueStopped: the message must stay unacked (the queue halted, or the
            consume is stopping).
        :raises BaseException: the failure to dead-letter.
        """
        done = 0
        while True:
            if self.halted is not None or self._stopping.is_set():
                raise self._left(message)
            running = dispatch(handlers, message, max_body, record)
            limit = self._limit
            try:
                return await (running if limit is None else bounded(running, limit, self._queue))
            except _STOP_PROCESS:
                raise
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # eventrabbit is stopping: left unacked
                failure: BaseException = asyncio.CancelledError("raised by the handler")
            except BaseException as exc:  # noqa: BLE001 — decided below, as the consumer does
                failure = exc
            retry = self._retry
            step = next_step(
                failure, done, retry.max_retries, retry.retry_delay_seconds, self._on_exhausted
            )
            if isinstance(step, GiveUp):
                if not step.stop:
                    raise failure
                self._stop_queue(message, failure, done)
                raise self._left(message)
            self._log_retry(message, failure, step.attempt, step.seconds)
            if await self._stopped_within(step.seconds):
                raise self._left(message)
            done = step.attempt

    def _left(self, message: DeliveredMessage) -> OrderedQueueStopped:
        """Why the message stays unacked: the queue halted, or the consume is stopping."""
        if self.halted is not None:
            return self.halted
        message_id = message.header.properties.message_id
        why = f"the consume of ordered queue {self._queue!r} is stopping"
        return OrderedQueueStopped(why, queue=self._queue, message_id=message_id)

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` if the consume began to stop first."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    def _log_retry(
        self, message: DeliveredMessage, exc: BaseException, attempt: int, delay: float
    ) -> None:
        message_id = message.header.properties.message_id
        most = self._retry.max_retries
        log.warning(
            "message %s on ordered queue %r failed; retry %d%s in place in %g s: %s",
            message_id,
            self._queue,
            attempt,
            "" if most == -1 else f" of {most}",
            delay,
            describe(exc),
            extra={"queue": self._queue, "message_id": message_id, "retry_count": attempt},
        )

    def _stop_queue(self, message: DeliveredMessage, exc: BaseException, done: int) -> None:
        message_id = message.header.properties.message_id
        self.halted = OrderedQueueStopped(
            f"message {message_id} on ordered queue {self._queue!r} still failed after {done} "
            f"retries in place ({describe(exc)}); it was left first in the queue and the consume "
            "stopped (on_exhausted='stop'): fix the cause and consume again",
            queue=self._queue,
            message_id=message_id,
        )
        log.error("%s", self.halted, extra={"queue": self._queue, "message_id": message_id})
        self._broken.set()  # the consumer's channel goes, and handle ends the consume
