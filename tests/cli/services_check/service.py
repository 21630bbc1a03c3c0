"""A service as ``eventrabbit check`` sees it: a module with one ``Handle`` and its channels.

The queue and exchange names come from the environment (``CHECK_QUEUE``, ``CHECK_EXCHANGE``),
so each test checks objects of its own; the test process builds the same channel with
:func:`channel` and :data:`RETRY` to declare them as the service would.
"""

from __future__ import annotations

import os

from eventrabbit import ExchangeType, QueueConfig, RetryConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel

#: The service's retries: its delay queue has a 2 s message TTL.
RETRY = RetryConfig(max_retries=3, retry_delay_seconds=2)


def channel(url: str, queue: str, exchange: str) -> ConsumeChannel:
    """The service's one channel: ``queue`` bound to the fanout exchange ``exchange`` (quorum
    queues when ``CHECK_QUORUM`` is set)."""
    config = QueueConfig(queue_type="quorum") if os.environ.get("CHECK_QUORUM") else None
    return ConsumeChannel(
        url, queue, exchange_name=exchange, exchange_type=ExchangeType.FANOUT, queue_config=config
    )


URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
events, handle = build_event_dependencies(URL, retry_config=RETRY)
CHANNELS = [
    channel(
        URL,
        os.environ.get("CHECK_QUEUE", "test.check.unset"),
        os.environ.get("CHECK_EXCHANGE", "test.check.unset"),
    )
]


@events.consumer("ping")
async def ping() -> None:
    """Nothing to do: ``check`` looks at the topology only."""
