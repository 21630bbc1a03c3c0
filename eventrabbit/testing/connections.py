"""The client connections a broker has open, and what their end means to it.

A connection that closes takes its exclusive queues with it. Brokers outlive event loops
(they are per process), and a test's loop may end with connections still open: such a
connection cannot close itself any more, so the broker closes it (:meth:`Connections.prune`)
whenever it is next used.
"""

from __future__ import annotations

from typing import Protocol

from aiormq.exceptions import ConnectionClosed

from .changes import Changes
from .topology import Topology

#: How a broker closes a connection it drops (as RabbitMQ on shutdown).
CONNECTION_FORCED = "CONNECTION_FORCED - broker forced connection closure"
#: How it closes one whose event loop ended.
LOOP_CLOSED = "CONNECTION_FORCED - event loop closed"


class Connection(Protocol):
    """What the broker needs of a connection (see :mod:`eventrabbit.testing.connection`)."""

    @property
    def loop_is_closed(self) -> bool:
        """Whether the event loop the connection lives on is closed."""
        ...

    def shutdown(self, reason: BaseException) -> None:
        """Close the connection and its channels now, for ``reason``."""
        ...


class Connections:
    """The open connections of one broker."""

    def __init__(self, topology: Topology, changes: Changes) -> None:
        self.topology = topology
        self.changes = changes
        self.open: set[Connection] = set()

    def __len__(self) -> int:
        return len(self.open)

    def add(self, connection: Connection) -> None:
        """A client connected."""
        self.open.add(connection)
        self.changes.fire()

    def forget(self, connection: Connection) -> None:
        """A connection closed: its exclusive queues are deleted."""
        self.open.discard(connection)
        self.topology.delete_exclusive(connection)
        self.changes.fire()

    def prune(self) -> None:
        """Close connections whose event loop is gone (left open by an earlier test)."""
        for connection in list(self.open):
            if connection.loop_is_closed:
                connection.shutdown(ConnectionClosed(320, LOOP_CLOSED))

    def drop_all(self) -> None:
        """Close every connection as a broker restart would."""
        for connection in list(self.open):
            connection.shutdown(ConnectionClosed(320, CONNECTION_FORCED))
