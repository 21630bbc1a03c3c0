"""Order per key at scale: one exchange, ``partitions`` ordered queues, RabbitMQ's
consistent-hash exchange choosing the queue by routing key.

Theory of operation
-------------------
The exchange (type ``x-consistent-hash``, from the ``rabbitmq_consistent_hash_exchange``
plugin that ships with RabbitMQ) hashes each message's routing key onto a ring of the queues
bound to it, each bound with the weight ``"1"``: every event of one key lands in the same
queue, in publish order. Each queue is consumed *ordered* (one message at a time, failures
retried in place) and with a *single active consumer*, so that:

- keys in different partitions are handled in parallel (each partition its own consumer);
- several processes may consume all partitions: on each, one is active and the others wait;
  when the active one goes (stopped, crashed, its connection lost), the broker puts its
  unacked message back first and makes the next one active — the key's order holds.

Producers publish with the key as routing key: ``events.publish(exchange, action, data,
key=aggregate_id)``. Changing ``partitions`` later moves keys between queues: drain first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from .checks import check_int, check_name
from .common import ConsumeChannel, ExchangeType, QueueConfig

#: The weight each partition queue is bound with: an equal share of the hash ring.
WEIGHT = "1"
#: Partitions one exchange may have (each is a queue, a channel and a consumer).
MAX_PARTITIONS = 1024


@dataclass(slots=True, frozen=True)
class PartitionedChannel:
    """A consistent-hash exchange and its ``partitions`` ordered queues, as consume channels.

    Consume every one of :meth:`channels` (in any number of processes)::

        partitioned = PartitionedChannel(url, "orders", partitions=8)
        await asyncio.gather(*(handle.consume(c) for c in partitioned.channels()))

    :param url: the broker's URL, or a cluster's URLs (as :class:`ConsumeChannel`).
    :param exchange_name: the ``x-consistent-hash`` exchange producers publish to; declared
        durable if it does not exist.
    :param partitions: how many queues (1 to 1024): how many keys are handled at once.
    :param queue_config: the queues' settings; ``ordered`` and ``single_active_consumer``
        are set whatever it says. Default: ``QueueConfig(ordered=True,
        single_active_consumer=True)``.
    :param queue_prefix: the queues are ``<queue_prefix>.<n>``, ``n`` from 0; default: the
        exchange name.
    :raises ConfigurationError: a value outside these limits.
    """

    url: str | Sequence[str]
    exchange_name: str
    partitions: int
    queue_config: QueueConfig | None = None
    queue_prefix: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_name("PartitionedChannel.exchange_name", self.exchange_name)
        check_int("PartitionedChannel.partitions", self.partitions, 1, MAX_PARTITIONS)
        self.channels()  # every queue name and URL checked now, not at consume

    def queue_name(self, index: int) -> str:
        """The queue of partition ``index``."""
        return f"{self.queue_prefix or self.exchange_name}.{index}"

    def config(self) -> QueueConfig:
        """The queues' config: the one given (or the default), ordered, single active."""
        base = self.queue_config or QueueConfig()
        return dataclasses.replace(base, ordered=True, single_active_consumer=True)

    def channels(self) -> list[ConsumeChannel]:
        """One :class:`ConsumeChannel` per partition, in partition order."""
        config = self.config()
        return [
            ConsumeChannel(
                self.url,
                self.queue_name(index),
                self.exchange_name,
                ExchangeType.CONSISTENT_HASH,
                queue_config=config,
                binding_keys=(WEIGHT,),
            )
            for index in range(self.partitions)
        ]
