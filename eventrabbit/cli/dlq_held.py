"""What a walk through a queue holds, and the nacks that give it back in order: pure
bookkeeping, a few numbers per consumer, whatever the number of messages.

Theory of operation
-------------------
A walk's consumers follow one another on one channel, so each has a range of delivery tags
above the one before's. Deliveries are read in tag order; each read one is acked or left
held, and the last ones may not be read at all (read ahead when the walk stopped). Giving back
what is held is one ``multiple`` nack per consumer, the oldest first, up to the last tag it
holds: its last delivery when that was never read, else the last it left held; nothing for a
consumer whose deliveries were all acked. A nack naming a tag already acked would close the
channel (RabbitMQ: unknown delivery tag), so none is made.
"""

from __future__ import annotations


class Held:
    """The deliveries held, as told by the walk in the order things happen."""

    def __init__(self) -> None:
        self._consumers: list[str] = []  # in the order they started
        self._last_of: dict[str, int] = {}  # consumer -> the last tag it was sent
        self._held_top: dict[str, int] = {}  # consumer -> the last tag read and left held
        self._reading: tuple[str, int] | None = None  # the delivery being read now
        self._read_up_to = 0
        self._acked_last = 0
        #: Deliveries of the newest consumer read and left held.
        self.here = 0

    @property
    def consumers(self) -> int:
        """How many consumers the walk started."""
        return len(self._consumers)

    def started(self, consumer: str) -> None:
        """A consumer started; the ones before it get nothing more."""
        self._consumers.append(consumer)
        self.here = 0

    def delivered(self, consumer: str, tag: int) -> None:
        """``consumer`` was sent delivery ``tag``."""
        self._last_of[consumer] = tag

    def reading(self, consumer: str, tag: int) -> None:
        """The walk hands delivery ``tag`` to its caller (the one before it is done with)."""
        self.read()
        self._reading, self._read_up_to = (consumer, tag), tag

    def acked(self, tag: int) -> None:
        """Delivery ``tag`` was acked (told before the ack goes out: a nack of it must not)."""
        self._acked_last = tag

    def read(self) -> None:
        """The caller is done with the delivery it had: held, unless it was acked."""
        reading, self._reading = self._reading, None
        if reading is None or reading[1] == self._acked_last:
            return
        consumer, tag = reading
        self._held_top[consumer] = tag
        if consumer == self._consumers[-1]:
            self.here += 1

    def nacks(self) -> list[int]:
        """The tags to nack, ``multiple`` and in this order, to give back everything held,
        once no consumer gets deliveries any more."""
        self.read()
        tops = []
        for consumer in self._consumers:
            last = self._last_of.get(consumer, 0)
            top = last if last > self._read_up_to else self._held_top.get(consumer, 0)
            if top:
                tops.append(top)
        return tops
