"""eventrabbit in six steps, against a real RabbitMQ: run ``python examples/demo.py``.

It connects to $EVENTRABBIT_URL (default: the local guest broker), uses a queue and an
exchange of its own (random names), deletes them at the end and exits by itself:

1. a service starts: ``build_event_dependencies`` and ``handle.consume`` of a queue bound to a
   fanout exchange;
2. a ``@events.producer`` publishes an event, a ``@events.consumer`` handles it;
3. a ``@events.function`` handles one action and publishes its result as a reply action,
   which another consumer handles;
4. a handler fails once and succeeds on the retry, which the broker delays by 1 s;
5. a message that is not JSON lands in ``<queue>.dlq`` with the reason in a header;
6. an RPC request with ``reply_to`` (RabbitMQ's direct reply-to) gets its ``{"data": ...}``.

Every step waits for what it shows with a timeout: exit 0 when all six happened, 1 when one did
not (it says which), 2 when no broker answers. The raw ``aiormq`` client plays "another
service": it publishes the poison message and the RPC request, and reads the replies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiormq
import aiormq.abc
import orjson
from pamqp import commands as spec
from yarl import URL

from eventrabbit import (
    ConfigurationError,
    ExchangeType,
    RetryConfig,
    build_event_dependencies,
)
from eventrabbit.common import ConsumeChannel

BROKER_URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
#: How long each step may take before the demo gives up on it.
STEP_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
RETRY_DELAY = 1

SUFFIX = secrets.token_hex(3)
EXCHANGE = f"demo.events.{SUFFIX}"
QUEUE = f"demo.orders.{SUFFIX}"
DEAD_LETTER_QUEUE = f"{QUEUE}.dlq"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def say(text: str) -> None:
    print(text, flush=True)


def censor(url: str) -> str:
    parsed = URL(url)
    if parsed.password is not None:
        parsed = parsed.with_password("******")
    return str(parsed)


# --- the service: decorators on one `events`, consumed through `handle` --------------------------

try:
    events, handle = build_event_dependencies(
        url=BROKER_URL,
        idle_timeout=300,
        retry_config=RetryConfig(max_retries=2, retry_delay_seconds=RETRY_DELAY),
    )
except ConfigurationError as exc:
    say(f"demo: bad EVENTRABBIT_URL: {exc}")
    sys.exit(2)

# What the handlers saw; each step waits on its asyncio.Event.
order_handled = asyncio.Event()
stock_checked = asyncio.Event()
invoice_sent = asyncio.Event()
price_asked = asyncio.Event()
invoice_failures: list[float] = []


# Step 2: a producer publishes its return value; a consumer gets `data` as keyword arguments.
@events.producer(exchange_name=EXCHANGE, action="ORDER_PLACED")
async def place_order(order_id: int, item: str) -> dict[str, Any]:
    return {"order_id": order_id, "item": item}


@events.consumer(action="ORDER_PLACED")
async def on_order_placed(order_id: int, item: str) -> None:
    say(f"   @events.consumer on_order_placed(order_id={order_id}, item={item!r}) ran")
    order_handled.set()


# Step 3: a function handles CHECK_STOCK and publishes its result as STOCK_CHECKED.
@events.producer(exchange_name=EXCHANGE, action="CHECK_STOCK")
async def request_stock_check(item: str) -> dict[str, Any]:
    return {"item": item}


@events.function(action="CHECK_STOCK", exchange_name=EXCHANGE, action_reply="STOCK_CHECKED")
async def check_stock(item: str) -> dict[str, Any]:
    result = {"item": item, "in_stock": 3}
    say(f"   @events.function check_stock(item={item!r}) returns {result} -> STOCK_CHECKED")
    return result


@events.consumer(action="STOCK_CHECKED")
async def on_stock_checked(item: str, in_stock: int) -> None:
    say(f"   @events.consumer on_stock_checked(item={item!r}, in_stock={in_stock}) ran")
    stock_checked.set()


# Step 4: fails on the first delivery, succeeds on the (delayed) retry.
@events.producer(exchange_name=EXCHANGE, action="SEND_INVOICE")
async def request_invoice(invoice_id: int) -> dict[str, Any]:
    return {"invoice_id": invoice_id}


@events.consumer(action="SEND_INVOICE")
async def send_invoice(invoice_id: int) -> None:
    now = time.monotonic()
    if not invoice_failures:
        invoice_failures.append(now)
        say(f"   send_invoice(invoice_id={invoice_id}) attempt 1: raising ConnectionError")
        raise ConnectionError("mail server busy (simulated)")
    waited = now - invoice_failures[0]
    say(
        f"   send_invoice(invoice_id={invoice_id}) attempt {len(invoice_failures) + 1}: "
        f"succeeded, {waited:.1f} s after the failure"
    )
    invoice_sent.set()


# Step 6: a plain consumer; because the request carries reply_to, its result is the reply.
@events.consumer(action="GET_PRICE")
async def get_price(item: str) -> dict[str, Any]:
    say(f"   @events.consumer get_price(item={item!r}) ran; its result is the reply")
    price_asked.set()
    return {"item": item, "price": 12.5}


# --- the demo run ---------------------------------------------------------------------------------


class StepFailed(Exception):
    """A step did not happen within STEP_TIMEOUT."""


async def expect(waitable: Awaitable[Any], consumer: asyncio.Task[None], what: str) -> Any:
    """Wait for ``waitable``, but at most STEP_TIMEOUT s and only while the consumer runs."""
    waiter = asyncio.ensure_future(waitable)
    try:
        done, _ = await asyncio.wait(
            [waiter, consumer], timeout=STEP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if not waiter.done():
            waiter.cancel()
    if waiter in done:
        return waiter.result()
    if consumer.done():
        error = None if consumer.cancelled() else consumer.exception()
        raise StepFailed(f"{what}: the consumer stopped ({error!r})")
    raise StepFailed(f"{what} did not happen within {STEP_TIMEOUT:.0f} s")


async def until_consuming(connection: aiormq.abc.AbstractConnection, queue: str) -> None:
    """Poll the broker until ``queue`` exists and has a consumer."""
    while True:
        probe = await connection.channel(publisher_confirms=False)
        try:
            ok = await probe.queue_declare(queue, passive=True)
            if ok.consumer_count:
                return
        except aiormq.exceptions.ChannelNotFoundEntity:
            pass  # not declared yet; that closed the probe channel
        finally:
            if not probe.is_closed:
                await probe.close()
        await asyncio.sleep(0.05)


def first_message() -> tuple[asyncio.Future[Any], Any]:
    """A future for the first message a raw consumer gets, and that consumer's callback."""
    future: asyncio.Future[aiormq.abc.DeliveredMessage] = asyncio.get_running_loop().create_future()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        if not future.done():
            future.set_result(message)

    return future, on_message


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_steps(raw: aiormq.abc.AbstractConnection) -> None:
    # 1. The service starts consuming its queue, bound to a fanout exchange it declares.
    channel = ConsumeChannel(
        url=BROKER_URL,
        queue_name=QUEUE,
        exchange_name=EXCHANGE,
        exchange_type=ExchangeType.FANOUT,
    )
    consumer = asyncio.create_task(handle.consume(channel))
    await expect(until_consuming(raw, QUEUE), consumer, "step 1: consuming the queue")
    say(
        f"1. service started: consuming queue {QUEUE!r}, bound to fanout exchange {EXCHANGE!r} "
        f"(RetryConfig(max_retries=2, retry_delay_seconds={RETRY_DELAY}))"
    )

    # 2. Producer -> exchange -> queue -> consumer.
    say("2. @events.producer place_order(order_id=1, item='book') publishes ORDER_PLACED")
    await place_order(order_id=1, item="book")
    await expect(order_handled.wait(), consumer, "step 2: ORDER_PLACED handled")

    # 3. Function: handles CHECK_STOCK and chains to STOCK_CHECKED.
    say("3. @events.producer request_stock_check(item='book') publishes CHECK_STOCK")
    await request_stock_check(item="book")
    await expect(stock_checked.wait(), consumer, "step 3: STOCK_CHECKED handled")

    # 4. A failure, retried through <queue>.delay after RETRY_DELAY seconds.
    say(f"4. SEND_INVOICE: the handler fails once; the retry comes back after {RETRY_DELAY} s")
    await request_invoice(invoice_id=7)
    await expect(invoice_sent.wait(), consumer, "step 4: the retry of SEND_INVOICE succeeding")

    # 5 and 6 use a raw client: "another service" that does not use eventrabbit.
    raw_channel = await raw.channel(publisher_confirms=True)
    try:
        await poison_message(raw_channel, consumer)
        await rpc_request(raw_channel, consumer)
    finally:
        # Cancels the raw consumers before their queues are deleted.
        if not raw_channel.is_closed:
            await raw_channel.close()


async def poison_message(
    raw_channel: aiormq.abc.AbstractChannel, consumer: asyncio.Task[None]
) -> None:
    # 5. A poison message goes straight to <queue>.dlq.
    dead, on_dead = first_message()
    await raw_channel.basic_consume(DEAD_LETTER_QUEUE, on_dead, no_ack=True)
    poison = b"this is not JSON"
    say(f"5. a raw client publishes {poison!r} to queue {QUEUE!r}")
    await raw_channel.basic_publish(poison, routing_key=QUEUE)
    message = await expect(dead, consumer, f"step 5: the poison message in {DEAD_LETTER_QUEUE!r}")
    headers = message.header.properties.headers or {}
    say(f"   found in {DEAD_LETTER_QUEUE!r}: body {message.body!r}")
    say(f"   x-eventrabbit-error: {text(headers.get('x-eventrabbit-error'))}")


async def rpc_request(
    raw_channel: aiormq.abc.AbstractChannel, consumer: asyncio.Task[None]
) -> None:
    # 6. RPC: the request names the direct reply-to pseudo-queue, consumed on the same channel.
    replies, on_reply = first_message()
    await raw_channel.basic_consume(DIRECT_REPLY_TO, on_reply, no_ack=True)
    correlation_id = uuid.uuid4().hex[:8]
    request = {"action": "GET_PRICE", "data": {"item": "book"}}
    say(f"6. RPC request {orjson.dumps(request).decode()} with reply_to={DIRECT_REPLY_TO}")
    await raw_channel.basic_publish(
        orjson.dumps(request),
        routing_key=QUEUE,
        properties=spec.Basic.Properties(
            content_type="application/json",
            reply_to=DIRECT_REPLY_TO,
            correlation_id=correlation_id,
        ),
    )
    reply = await expect(replies, consumer, "step 6: the RPC reply")
    matches = reply.header.properties.correlation_id == correlation_id
    say(f"   reply (correlation_id matches: {matches}): {reply.body.decode()}")
    if not matches:
        raise StepFailed("step 6: the reply has another correlation_id")
    if "data" not in orjson.loads(reply.body):
        raise StepFailed(f"step 6: the reply has no 'data': {reply.body!r}")


async def delete_topology(raw: aiormq.abc.AbstractConnection) -> None:
    channel = await raw.channel(publisher_confirms=False)
    for queue in (QUEUE, f"{QUEUE}.delay", DEAD_LETTER_QUEUE):
        await channel.queue_delete(queue)
    await channel.exchange_delete(EXCHANGE)
    await channel.close()


async def connect_or_explain() -> aiormq.abc.AbstractConnection | None:
    """The raw client's connection, or None after one line that says why there is none."""
    safe = censor(BROKER_URL)
    aiormq_log = logging.getLogger("aiormq")
    level = aiormq_log.level
    aiormq_log.setLevel(logging.CRITICAL)  # the one line below says it all
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await aiormq.connect(BROKER_URL)
    except aiormq.exceptions.ProbableAuthenticationError:
        say(f"demo: RabbitMQ at {safe} refused the login; check the user and password")
    except (OSError, TimeoutError):  # aiormq's AMQPConnectionError is an OSError
        say(
            f"demo: no RabbitMQ at {safe} — start one with 'rabbitmq-server -detached' "
            "or 'docker compose -f docker/compose.yml up -d'"
        )
    except aiormq.exceptions.AMQPError as exc:
        say(
            f"demo: RabbitMQ at {safe} closed the connection ({type(exc).__name__}); "
            "check the vhost and permissions in EVENTRABBIT_URL"
        )
    finally:
        aiormq_log.setLevel(level)
    return None


async def main() -> int:
    raw = await connect_or_explain()
    if raw is None:
        return 2
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    say(f"eventrabbit demo on {censor(BROKER_URL)} (event loop: {loop_name})")
    started = time.monotonic()
    failed = False
    try:
        await run_steps(raw)
    except Exception as exc:
        failed = True
        reason = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
        say(f"demo: FAILED after {time.monotonic() - started:.1f} s — {reason}; cleaning up")
    finally:
        try:
            # Stops the consumer gracefully and closes eventrabbit's connections.
            await handle.close()
            await delete_topology(raw)
            await raw.close()
        except Exception as exc:
            failed = True
            say(f"demo: cleanup FAILED — {type(exc).__name__}: {exc}")
    if failed:
        return 1
    say(
        f"demo: all 6 steps done in {time.monotonic() - started:.1f} s; handle closed, "
        f"queue {QUEUE!r} (+ .delay, .dlq) and exchange {EXCHANGE!r} deleted"
    )
    return 0


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed, else on asyncio's own loop."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:
        pass  # asyncio's own loop; run below, not in here: a traceback would begin with this
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    # WARNING shows eventrabbit's retry and dead-letter lines, briefly, between the steps.
    logging.basicConfig(level=logging.WARNING, format="   [log %(levelname)s] %(message)s")
    try:
        sys.exit(run(main()))
    except KeyboardInterrupt:
        say("demo: interrupted")
        sys.exit(130)
