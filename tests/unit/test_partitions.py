"""``PartitionedChannel``: the consume channels it expands to (README: Ordering)."""

from __future__ import annotations

from typing import Any

import pytest

from eventrabbit import (
    ConfigurationError,
    ConsumeChannel,
    ExchangeType,
    PartitionedChannel,
    QueueConfig,
)
from eventrabbit.topology import work_queue_arguments

URL = "amqp://guest:secret@localhost/"


def test_one_ordered_single_active_queue_per_partition_bound_with_weight_one() -> None:
    channels = PartitionedChannel(URL, "orders", partitions=3).channels()
    assert [c.queue_name for c in channels] == ["orders.0", "orders.1", "orders.2"]
    for channel in channels:
        assert channel.exchange_name == "orders"
        assert channel.exchange_type is ExchangeType.CONSISTENT_HASH
        assert channel.routing_keys() == ("1",)
        assert channel.queue_config is not None
        assert channel.queue_config.ordered
        assert channel.queue_config.prefetch_count == 1
        assert work_queue_arguments(channel.queue_name, channel.queue_config) == {
            "x-single-active-consumer": True
        }


def test_a_given_config_is_kept_but_made_ordered_and_single_active() -> None:
    given = QueueConfig(queue_type="quorum", grace_timeout=3, on_exhausted="dead-letter")
    [channel] = PartitionedChannel(URL, "orders", 1, given, queue_prefix="svc.orders").channels()
    assert channel.queue_name == "svc.orders.0"
    assert channel.queue_config is not None
    assert (channel.queue_config.queue_type, channel.queue_config.grace_timeout) == ("quorum", 3)
    assert channel.queue_config.ordered
    assert channel.queue_config.single_active_consumer


def test_every_url_of_a_cluster_is_kept() -> None:
    urls = ["amqp://a/", "amqp://b/"]
    [channel] = PartitionedChannel(urls, "orders", 1).channels()
    assert channel.urls == tuple(urls)
    assert isinstance(channel, ConsumeChannel)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"partitions": 0}, "PartitionedChannel.partitions", id="none"),
        pytest.param({"partitions": 1025}, "PartitionedChannel.partitions", id="too-many"),
        pytest.param({"partitions": True}, "PartitionedChannel.partitions", id="bool"),
        pytest.param({"exchange_name": 5}, "PartitionedChannel.exchange_name", id="name-type"),
        pytest.param({"queue_prefix": "amq.x"}, "amq.", id="reserved-prefix"),
        pytest.param({"queue_prefix": "q" * 250}, "queue_name", id="names-too-long"),
    ],
)
def test_refuses(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"url": URL, "exchange_name": "orders", "partitions": 2}
    with pytest.raises(ConfigurationError, match=message):
        PartitionedChannel(**(arguments | kwargs))
