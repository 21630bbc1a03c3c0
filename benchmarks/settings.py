"""What one run of the suite measures: sizes, broker URL, clients, rounds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: The broker, as for the examples (tox passes EVENTRABBIT_URL through).
DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
#: The action every benchmark event carries.
ACTION = "BENCH"
#: Deliveries in flight per consumer, the same for every client.
PREFETCH = 100
#: Publishes per asyncio.gather in the concurrent publish workload.
BATCH = 100
#: Every client, in the order rounds alternate them; the first is the reference.
ALL_CLIENTS = ("raw", "eventrabbit", "aio-pika", "faststream")
REFERENCE = "raw"
#: Offered rates of the latency workload, events per second (its figures are ``lat<rate>_*``).
LATENCY_RATES = (1000, 5000)
#: The latency workload's third rate: this share of the raw loop's rate with the producer sending
#: flat out, measured in the same run (``benchmarks.latency.saturation``).
LATENCY_SHARE = 0.7
#: The key prefix of that rate's figures.
LATENCY_SHARE_KEY = "lat70"


def broker_url() -> str:
    """The broker URL: ``EVENTRABBIT_URL`` or the local default."""
    return os.environ.get("EVENTRABBIT_URL", DEFAULT_URL)


@dataclass(slots=True, frozen=True)
class Settings:
    """Sizes and options of one run."""

    url: str
    rounds: int = 3
    consume_n: int = 20_000
    publish_n: int = 5_000
    rpc_n: int = 2_000
    memory_n: int = 100_000
    #: Seconds of events measured at each rate of the latency workload.
    latency_s: float = 3.0
    clients: tuple[str, ...] = ALL_CLIENTS
    memory_clients: tuple[str, ...] = ALL_CLIENTS
    workloads: tuple[str, ...] = field(default=("consume", "publish", "rpc", "latency", "memory"))
    uvloop: bool = False
    quick: bool = False
    #: The raw loop's rate with the producer sending flat out, the base of the ``lat70`` rate;
    #: the suite measures it before the first latency round (``None``: no ``lat70`` rate).
    raw_max_rate: float | None = None

    @property
    def latency_share_rate(self) -> float:
        """The ``lat70`` rate: :data:`LATENCY_SHARE` of :attr:`raw_max_rate`, whole events/s."""
        return float(round(LATENCY_SHARE * (self.raw_max_rate or 0.0)))

    @classmethod
    def quick_run(cls, url: str, **overrides: object) -> Settings:
        """The ``--quick`` sizes: one round, under a minute on a busy 2-core machine.

        The suite logs what each workload took. There, with memory N 10,000 and 1,000 messages
        per publish mode, the run took 66 s, over half of it memory (2 x 2N events pre-published
        and consumed, an interpreter started per client) and latency (fixed in time, 16 s);
        halving both sizes brought it to 40 s (memory 11 s, publish 5 s).
        """
        sizes: dict[str, object] = {
            "rounds": 1,
            "consume_n": 2_000,
            "publish_n": 500,
            "rpc_n": 200,
            "memory_n": 5_000,
            "latency_s": 1.0,
            "quick": True,
        }
        sizes.update(overrides)
        return cls(url, **sizes)  # type: ignore[arg-type]
