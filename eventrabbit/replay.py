"""Replay and follow: a stream's events through the handlers ``@events.consumer`` and
``@events.function`` registered, in stream order.

Theory of operation
-------------------
- **One event at a time, in order.** Deliveries go from aiormq's callback into a queue; one
  loop takes them out and handles each before the next, so a projection sees the stream's
  order. Acks only give the broker credit to send more (a stream removes nothing).
- **Position.** The reader keeps the lowest offset it still wants. It skips every delivery
  below it — the rest of the chunk the broker started at, or what a reconnect sends again —
  and after a lost connection it consumes again from exactly that offset: no event is handled
  twice and none is missed, however often the connection goes.
- **Checkpoints** (:mod:`eventrabbit.checkpoints`): with a named checkpoint, the reader starts
  at checkpoint + 1 and saves its position every ``checkpoint_every`` events and when it ends,
  however it ends.
- **Stopping.** ``"idle"`` ends once no event came for ``idle`` seconds (caught up); an offset
  ends after that event; a ``datetime`` before the first event published later (or once
  caught up after that time); ``None`` follows until cancelled.
- **Failures** (:mod:`eventrabbit.replay_handling`): retried in process, then the replay stops
  with :class:`~eventrabbit.errors.ReplayFailed` or dead-letters the event and goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .checkpoints import CheckpointStore
from .checks import check_int, check_seconds
from .common import RetryConfig
from .errors import ConfigurationError
from .replay_context import Replaying, enter, leave
from .replay_handling import FailurePolicy, Handling, Source
from .replay_reader import Checkpoint, StreamReader
from .streams import Start, Stop, StreamChannel

#: Seconds without an event after which a replay to ``"idle"`` is caught up.
DEFAULT_IDLE = 1.0
#: Events between two saves of a checkpoint.
DEFAULT_CHECKPOINT_EVERY = 100


@dataclass(slots=True, frozen=True)
class ReplaySummary:
    """What a replay did.

    :param handled: events handled (their handlers returned), dead-lettered ones included.
    :param skipped: deliveries before the start (the rest of a chunk, or sent again).
    :param dead_lettered: events copied to ``<stream>.dlq`` after failing.
    :param held_back: publishes and replies handlers made that were not sent.
    :param first_offset: the offset of the first event handled; ``None`` if none was.
    :param last_offset: the offset of the last event handled.
    :param duration: seconds from start to end.
    :param reconnects: connections lost and made again on the way.
    """

    stream: str
    handled: int
    skipped: int
    dead_lettered: int
    held_back: int
    first_offset: int | None
    last_offset: int | None
    duration: float
    reconnects: int


async def replay(
    handle: Source,
    stream: StreamChannel,
    *,
    start: Start = "first",
    stop: Stop = "idle",
    idle: float = DEFAULT_IDLE,
    on_failure: FailurePolicy = "stop",
    retry: RetryConfig | None = None,
    side_effects: bool = False,
    checkpoint: str | None = None,
    store: CheckpointStore | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> ReplaySummary:
    """Dispatch ``stream``'s events through this handle's handlers, in order; return what was
    done. Reconnects on its own after a lost connection, without repeating or missing events.

    :param start: ``"first"``, ``"last"``, ``"next"``, an offset, a timezone-aware
        ``datetime`` or a ``timedelta`` (that long ago). With a ``checkpoint`` that exists,
        checkpoint + 1 instead.
    :param stop: ``"idle"`` (no event for ``idle`` seconds), the last offset to handle, a
        timezone-aware ``datetime`` (events published later are not handled), or ``None``
        (follow until cancelled).
    :param on_failure: after the ``retry`` attempts (in process; default: the handle's
        ``RetryConfig``; bad input gets none): ``"stop"`` raises
        :class:`~eventrabbit.errors.ReplayFailed`, ``"dead_letter"`` copies the event to
        ``<stream>.dlq`` and goes on.
    :param side_effects: send what handlers publish (and replies); default: hold it back.
    :param checkpoint: the checkpoint's name in ``store``.
    :param checkpoint_every: events between two saves (and one when the replay ends).
    :raises ReplayFailed: an event failed for good with ``on_failure="stop"``.
    :raises TopologyError: the stream cannot be declared or bound as asked.
    :raises ConfigurationError: a start, stop or option that cannot work.
    """
    if (checkpoint is None) != (store is None):
        raise ConfigurationError("give both checkpoint and store, or neither")
    check_int("checkpoint_every", checkpoint_every, 1)
    check_seconds("idle", idle, positive=True)
    saving = None
    if checkpoint is not None and store is not None:
        saved = await store.load(checkpoint)
        start = start if saved is None else saved + 1
        saving = Checkpoint(checkpoint, store, checkpoint_every)
    began = time.monotonic()
    reader = StreamReader(handle, stream, start, stop, saving)
    context = Replaying(stream.stream_name, side_effects=side_effects)
    retry = retry or handle.retry_config
    handling = Handling(handle, stream.stream_name, context, on_failure, retry)
    token = enter(context)
    try:
        await reader.run(handling, idle)
    finally:
        leave(token)
        await reader.save()  # however it ends: cancelled, failed, done
    return ReplaySummary(
        stream.stream_name,
        handling.handled,
        reader.skipped,
        handling.dead_lettered,
        context.held_back,
        reader.first,
        None if reader.first is None or reader.next is None else reader.next - 1,
        time.monotonic() - began,
        reader.reconnects,
    )


async def follow(
    handle: Source,
    stream: StreamChannel,
    checkpoint: str,
    store: CheckpointStore,
    *,
    start: Start = "first",
    on_failure: FailurePolicy = "stop",
    retry: RetryConfig | None = None,
    side_effects: bool = False,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> ReplaySummary:
    """Keep handling ``stream``'s events as they come, from checkpoint + 1 (or ``start`` when
    there is no checkpoint yet), until cancelled; the options are :func:`replay`'s.

    Cancelling it saves the checkpoint before the ``CancelledError`` propagates.
    """
    return await replay(
        handle,
        stream,
        start=start,
        stop=None,
        on_failure=on_failure,
        retry=retry,
        side_effects=side_effects,
        checkpoint=checkpoint,
        store=store,
        checkpoint_every=checkpoint_every,
    )
