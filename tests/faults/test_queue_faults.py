"""Queue-level faults on a private node: the queue deleted under its consumer, a consumer
cancelled during a slow handler, and a retry waiting in ``<queue>.delay`` across a broker
restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from eventrabbit import Handle, QueueConfig, RetryConfig, build_event_dependencies
from tests.faults.rabbit_node import RabbitNode
from tests.faults.support import (
    ACTION,
    PUBLISH_TIMEOUT,
    READY_TIMEOUT,
    Probe,
    Recorder,
    assert_fails_loudly,
    close_services,
    consuming,
    figures,
    producer_service,
    publish_stream,
    recovery,
    report,
    scenario,
    work_channel,
)
from tests.helpers import unique

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
async def test_queue_deleted_under_the_consumer(node: RabbitNode) -> None:
    """``rabbitmqctl delete_queue``: the broker cancels the consumer; consume re-declares the
    queue and resumes. Events that were in the deleted queue are legitimately gone, so the
    stream is published in two halves around the deletion, and every event published after
    the queue was back (declared, bound, consumed) must be handled.
    """
    half = 1500
    async with scenario("deleted", node.url()) as s:
        first = asyncio.create_task(publish_stream(s.send, range(half), rate=300))
        await s.recorder.wait_count(half // 5, timeout=30)
        s.watch.arm()
        await node.delete_queue(s.queue)  # mid-stream: the first half still flows
        deleted = time.monotonic()
        back = await s.watch.back(timeout=30)  # declared, bound and consumed again
        async with asyncio.timeout(60):
            first_half = await first
        second_half = await publish_stream(s.send, range(half, 2 * half), rate=600)
        # Everything whose publish started once the queue was back must arrive.
        confirmed = first_half.confirmed | second_half.confirmed
        started = first_half.started | second_half.started
        after_back = [seq for seq, at in started.items() if at > back and seq in confirmed]
        await s.recorder.wait_for(after_back, timeout=60, what="published after the re-declare")
        s.still_consuming()
    recorder, producer = s.recorder, s.producer

    confirmed_first = set(first_half.confirmed)
    first_handled = recorder.first_after(back)
    report(
        figures(
            "queue-deleted",
            recorder,
            published=len(first_half.confirmed) + len(second_half.confirmed),
            recovery_s=recovery(first_handled, since=deleted),
            extra={
                "redeclared_s": back - deleted,
                "gone_with_queue": len(recorder.missing(confirmed_first)),
                "unroutable": getattr(producer.publisher, "unroutable_count", "n/a"),
                "after_back": len(after_back),
            },
        )
    )
    for result in (first_half, second_half):
        assert_fails_loudly(result)
        assert not result.failed, result.failures()
    assert len(second_half.confirmed) == half


@pytest.mark.timeout(120)
async def test_cancel_during_a_slow_handler(node: RabbitNode) -> None:
    """Cancelling ``consume`` — and ``handle.close(timeout)`` — while a handler is slow: the
    handler finishes, its message is acked once and never redelivered to the next consumer.
    """
    total, slow_s = 2000, 1.5
    sentinel = total  # published behind everything, handled last
    slow = {600: slow_s, 1300: slow_s}
    url = node.url()
    queue, exchange = unique("slow"), unique("slow.ex")
    recorder = Recorder()
    started = {seq: asyncio.Event() for seq in slow}
    finished: dict[int, float] = {}

    def consumer() -> Handle:
        events, handle = build_event_dependencies(
            url,
            idle_timeout=None,
            queue_config=QueueConfig(prefetch_count=50, grace_timeout=10),
            publish_timeout=PUBLISH_TIMEOUT,
        )

        @events.consumer(ACTION)
        async def tick(seq: int, slow: float = 0.0) -> None:
            recorder.record(seq)
            if slow:
                started[seq].set()
                await asyncio.sleep(slow)
                finished[seq] = time.monotonic()

        return handle

    producer, producer_handle = producer_service(url)

    async def send(seq: int) -> str:
        data = {"seq": seq, "slow": slow.get(seq, 0.0)}
        return await producer.publish(exchange, ACTION, data, key=queue)

    channel = work_channel(url, queue, exchange)
    probe = Probe(url)
    handles: list[Handle] = []
    try:
        first = consumer()
        handles.append(first)
        consume = asyncio.create_task(first.consume(channel))
        await first.ready(channel, timeout=READY_TIMEOUT)
        stream = asyncio.create_task(publish_stream(send, range(total), rate=500))

        # 1. cancel the consume task while the handler of 600 sleeps.
        await asyncio.wait_for(started[600].wait(), timeout=30)
        cancelled_at = time.monotonic()
        consume.cancel()
        async with asyncio.timeout(15):
            await asyncio.gather(consume, return_exceptions=True)
        stopped_at = time.monotonic()
        assert 600 in finished, "the slow handler was cut short by the cancellation"
        assert finished[600] <= stopped_at

        # 2. a new consumer; close its handle while the handler of 1300 sleeps.
        second = consumer()
        handles.append(second)
        second_task = asyncio.create_task(second.consume(channel))
        await asyncio.wait_for(started[1300].wait(), timeout=30)
        closing_at = time.monotonic()
        async with asyncio.timeout(15):
            await second.close(timeout=5)
        closed_at = time.monotonic()
        assert second_task.done()
        assert 1300 in finished, "the slow handler was cut short by handle.close"

        # 3. a third consumer takes the rest; nothing handled before comes again.
        third = consumer()
        handles.append(third)
        async with consuming(third, channel):
            async with asyncio.timeout(60):
                result = await stream
            await recorder.wait_for(result.confirmed, timeout=60, what="confirmed events")
            # A redelivery would have been requeued when its channel closed, ahead of anything
            # published since: once a sentinel behind it is handled, it would have shown.
            await send(sentinel)
            await recorder.wait_for([sentinel], timeout=30, what="the sentinel")
        depth = await probe.queue(queue)
    finally:
        await probe.close()
        await close_services(producer_handle, *handles)

    first_after = recorder.first_after(stopped_at)
    report(
        figures(
            "cancel-during-slow-handler",
            recorder,
            published=len(result.confirmed),
            recovery_s=recovery(first_after, since=cancelled_at),
            extra={
                "cancel_took_s": stopped_at - cancelled_at,
                "close_took_s": closed_at - closing_at,
                "slow_handled": f"{recorder.counts[600]},{recorder.counts[1300]}",
                "left_in_queue": depth[0] if depth else "n/a",
            },
        )
    )
    assert_fails_loudly(result)
    assert not result.failed, result.failures()
    assert recorder.counts[600] == 1, "the message of the cancelled slow handler came again"
    assert recorder.counts[1300] == 1, "the message of the closed slow handler came again"
    assert depth == (0, 0), f"messages left in the queue (ready, consumers): {depth}"
    assert recorder.duplicates == 0, (
        "handled messages were redelivered after a graceful stop: "
        f"{sorted(s for s, c in recorder.counts.items() if c > 1)[:10]}"
    )


@pytest.mark.timeout(150)
async def test_delayed_retry_survives_a_broker_restart(node: RabbitNode) -> None:
    """A retry copy waiting in ``<queue>.delay`` when the node stops (``rabbitmqctl stop``, the
    data directory kept) is handled after the node is started again.

    Every 20th event fails its first attempt; with ``retry_delay_seconds=3`` those that failed
    in the 3 s before the node went down were in the delay queue at that moment.
    """
    total, delay_s, fail_every = 2000, 3.0, 20
    url = node.url()
    recorder = Recorder()
    attempts: Counter[int] = Counter()
    first_failure: dict[int, float] = {}

    events, handle = build_event_dependencies(
        url,
        idle_timeout=None,
        retry_config=RetryConfig(max_retries=3, retry_delay_seconds=delay_s),
        queue_config=QueueConfig(prefetch_count=50),
        publish_timeout=PUBLISH_TIMEOUT,
    )

    @events.consumer(ACTION)
    async def tick(seq: int) -> None:
        attempts[seq] += 1
        if seq % fail_every == 0 and attempts[seq] == 1:
            first_failure[seq] = time.monotonic()
            raise RuntimeError(f"first attempt of {seq} fails")
        recorder.record(seq)

    async with scenario("delayed", url, service=(events, handle), recorder=recorder) as s:
        stream = asyncio.create_task(publish_stream(s.send, range(total), rate=250))
        await recorder.wait_count(total // 3, timeout=30)
        waiting_before = (await s.probe.queue(f"{s.queue}.delay") or (0, 0))[0]
        await s.probe.close()
        s.watch.arm()
        await node.stop_async()
        halted = time.monotonic()  # the VM has exited
        down = await s.watch.lost(timeout=30)
        await node.start_async()
        back = await s.watch.back(timeout=60)
        async with asyncio.timeout(90):
            result = await stream
        await recorder.wait_for(result.confirmed, timeout=60, what="confirmed events")

    # Failed (and so copied to the delay queue, whose TTL starts then) before the consumer lost
    # the node, and less than the delay before the VM had exited: in the delay queue when it
    # stopped. The margins cover the copy's confirm and the clock reads.
    in_delay = sorted(
        seq for seq, at in first_failure.items() if halted - delay_s + 0.1 < at < down - 0.1
    )
    # Handled once the node was gone (not before it stopped: the delay held them across the
    # outage). Not "after handle.ready() returned": a consumer may handle what the broker
    # sends right after Basic.ConsumeOk before its ready() waiter wakes.
    retried_after_restart = [seq for seq in in_delay if recorder.first_handled[seq] > halted]
    first = recorder.first_after(back)
    report(
        figures(
            "delayed-retry-across-restart",
            recorder,
            published=len(result.confirmed),
            recovery_s=recovery(first, since=down),
            extra={
                "failed_first_attempt": len(first_failure),
                "in_delay_at_stop": len(in_delay),
                "delay_depth_before_stop": waiting_before,
                "retried_after_restart": len(retried_after_restart),
                "stop_s": halted - down,
                "restart_s": back - down,
            },
        )
    )
    assert_fails_loudly(result)
    assert not result.failed, result.failures()
    assert in_delay, "no retry was waiting in the delay queue when the node stopped"
    assert recorder.missing(in_delay) == []
    assert retried_after_restart == in_delay, "a retry that waited in the delay queue came early"
    assert recorder.missing(first_failure) == []
