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

Health checks and metrics (``examples/health.py``) are served on
http://$EVENTRABBIT_HEALTH_HOST:$EVENTRABBIT_HEALTH_PORT (default ``127.0.0.1:8080``; port 0
picks a free one; the address is printed at start)::

    curl -i localhost:8080/livez      # 200 while the process runs
    curl -i localhost:8080/healthz    # 200 when every queue is consuming, else 503; JSON
    curl localhost:8080/metrics       # Prometheus metrics, with eventrabbit[prometheus]

Exit codes: 0 after a signal, 1 when a consumer stopped by itself (such as a queue that exists
with other arguments), 2 when the health address cannot be used.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from eventrabbit import ExchangeType, Hooks, RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
PREFIX = os.environ.get("EVENTRABBIT_SERVICE_PREFIX", "example_service")

USERS_EXCHANGE = f"{PREFIX}.users"
EMAIL_EXCHANGE = f"{PREFIX}.email"


def prometheus() -> tuple[list[Hooks], Callable[[], tuple[str, bytes]] | None]:
    """The Prometheus hook, and what /metrics serves; none without eventrabbit[prometheus]."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from eventrabbit.contrib.prometheus import PrometheusHooks
    except ImportError:
        return [], None
    registry = CollectorRegistry()  # its own; prometheus_client's default one works too
    return [PrometheusHooks(registry)], lambda: (CONTENT_TYPE_LATEST, generate_latest(registry))


HOOKS, METRICS = prometheus()

events, handle = build_event_dependencies(
    url=URL,
    idle_timeout=300,
    retry_config=RetryConfig(max_retries=3, retry_delay_seconds=5),
    hooks=HOOKS,
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
    # health.py sits beside this script. Imported here, when the service runs, so that loading
    # this module only for its definitions (e.g. its AsyncAPI document) does not need it.
    from health import HealthServer, address

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    # Listening first: /livez answers, and /healthz says 503, while the queues start.
    health = HealthServer(handle.status, METRICS)
    try:
        host, port = await health.start(*address(os.environ))
    except (ValueError, OSError) as exc:
        print(f"service: cannot serve health checks: {exc}", flush=True)
        return 2
    print(
        f"service: health checks on http://{host}:{port} (/livez, /healthz, /metrics)", flush=True
    )
    if METRICS is None:
        print("service: /metrics answers 404: pip install 'eventrabbit[prometheus]'", flush=True)

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        health.stopping = True  # not ready from now on: stop sending work here
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

    health.stopping = True
    await handle.close()  # no new messages, in-flight handlers finish and are acked
    await health.close()
    stopping.cancel()
    print("service: stopped", flush=True)
    return 1 if failed else 0


def run(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (``pip install 'eventrabbit[uvloop]'``)."""
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
    sys.exit(run(main()))
