"""What a client provides: four async context managers, one per role in the workloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..tally import Tally

#: Publishes event number ``i``; returns once the broker confirmed it.
PublishFn = Callable[[int], Awaitable[Any]]
#: Sends request number ``i`` and returns the reply's data.
CallFn = Callable[[int], Awaitable[Any]]
#: Consumes ``queue`` while open, calling ``tally.hit(i)`` once per event ``i``; stops gracefully.
ConsumerFactory = Callable[[str, str, int, Tally], AbstractAsyncContextManager[None]]
PublisherFactory = Callable[[str, str], AbstractAsyncContextManager[PublishFn]]
#: Serves requests on ``queue`` while open: replies ``{"i": i}`` to ``reply_to``.
ServerFactory = Callable[[str, str, int], AbstractAsyncContextManager[None]]
CallerFactory = Callable[[str, str], AbstractAsyncContextManager[CallFn]]
#: Publishes events ``range(n)`` pipelined (many confirms outstanding) and returns once every
#: one is confirmed.
BulkFn = Callable[[int], Awaitable[Any]]
BulkFactory = Callable[[str, str], AbstractAsyncContextManager[BulkFn]]


@dataclass(slots=True, frozen=True)
class Client:
    """One library under test.

    :param package: the distribution whose version the report shows.
    """

    name: str
    package: str
    consumer: ConsumerFactory
    publisher: PublisherFactory
    rpc_server: ServerFactory
    rpc_client: CallerFactory
    #: Pipelined bulk publishing, for clients that have it (the bulk workload skips others).
    bulk_publisher: BulkFactory | None = None

    def version(self) -> str:
        """The installed version of :attr:`package`."""
        try:
            return version(self.package)
        except PackageNotFoundError:
            return "not installed"


def reply_data(i: int) -> dict[str, int]:
    """What every RPC server's handler returns for request ``i``."""
    return {"i": i}
