"""A long-running service: several queues, one ``handle``, and a graceful stop.

Run ``python examples/service.py`` and stop it with Ctrl+C (SIGINT) or ``kill <pid>`` (SIGTERM):
the signal handler calls ``await handle.close()``, which stops taking new messages, lets the
handlers in flight finish (up to the queue's grace timeout) and acks them, and closes the
connections. Then the process exits 0.

The broker is $EVENTRABBIT_URL (default: the local guest broker). Queue and exchange names
start with $EVENTRABBIT_SERVICE_PREFIX (default ``example_service``); the queues are durable
and stay on the broker after the service stops, as a real service's would.

Try it from another shell while it runs (a raw publish to the users exchange)::

    python - <<'EOF'
    import asyncio, aiormq
    async def main():
        connection = await aiormq.connect("amqp://guest:guest@localhost:5672/")
        channel = await connection.channel()
        await channel.basic_publish(
            b'{"action": "USER_CREATED", "data": {"user_id": 1, "name": "Ada"}}',
            exchange="example_service.users",
        )
        await connection.close()
    asyncio.run(main())
    EOF
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from eventrabbit import ExchangeType, RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
PREFIX = os.environ.get("EVENTRABBIT_SERVICE_PREFIX", "example_service")

USERS_EXCHANGE = f"{PREFIX}.users"
EMAIL_EXCHANGE = f"{PREFIX}.email"

events, handle = build_event_dependencies(
    url=URL,
    idle_timeout=300,
    retry_config=RetryConfig(max_retries=3, retry_delay_seconds=5),
)


@events.consumer(action="USER_CREATED")
async def on_user_created(user_id: int, name: str) -> None:
    print(f"service: user {user_id} ({name}) created; asking for a welcome email", flush=True)
    await request_welcome_email(user_id=user_id, email=f"user{user_id}@example.com")


@events.producer(exchange_name=EMAIL_EXCHANGE, action="SEND_EMAIL")
async def request_welcome_email(user_id: int, email: str) -> dict[str, Any]:
    return {"user_id": user_id, "email": email}


@events.function(action="SEND_EMAIL", exchange_name=EMAIL_EXCHANGE, action_reply="EMAIL_SENT")
async def send_email(user_id: int, email: str) -> dict[str, Any]:
    print(f"service: sending the welcome email to {email}", flush=True)
    return {"user_id": user_id, "email": email, "status": "sent"}


@events.consumer(action="EMAIL_SENT")
async def on_email_sent(user_id: int, email: str, status: str) -> None:
    print(f"service: email to {email} {status}", flush=True)


@events.consumer(action="GET_USER")
async def get_user(user_id: int) -> dict[str, Any]:
    # Called with reply_to set, its result goes back to the caller as {"data": ...}.
    return {"user_id": user_id, "name": "Ada"}


QUEUES = [
    # USER_CREATED events, from a fanout exchange every interested service binds to.
    ConsumeChannel(
        url=URL,
        queue_name=f"{PREFIX}.users",
        exchange_name=USERS_EXCHANGE,
        exchange_type=ExchangeType.FANOUT,
    ),
    # SEND_EMAIL and EMAIL_SENT.
    ConsumeChannel(
        url=URL,
        queue_name=f"{PREFIX}.email",
        exchange_name=EMAIL_EXCHANGE,
        exchange_type=ExchangeType.FANOUT,
    ),
    # RPC requests (GET_USER with reply_to), sent straight to the queue: no exchange.
    ConsumeChannel(url=URL, queue_name=f"{PREFIX}.rpc"),
]


async def main() -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    consumers = [asyncio.create_task(handle.consume(channel)) for channel in QUEUES]
    stopping = asyncio.create_task(stop.wait())
    names = ", ".join(channel.queue_name for channel in QUEUES)
    print(f"service: consuming {names}; stop with Ctrl+C or SIGTERM", flush=True)

    # consume() runs until cancelled; it only returns early on a programming error, such as a
    # queue that exists with other arguments.
    done, _ = await asyncio.wait([*consumers, stopping], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in consumers if task in done]
    if received:
        print(f"service: {received[0].name} received, stopping gracefully", flush=True)
    for task in failed:
        print(f"service: a consumer stopped: {task.exception()!r}", flush=True)

    await handle.close()  # no new messages, in-flight handlers finish and are acked
    stopping.cancel()
    print("service: stopped", flush=True)
    return 1 if failed else 0


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (``pip install 'eventrabbit[uvloop]'``)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


if __name__ == "__main__":
    sys.exit(run(main()))
