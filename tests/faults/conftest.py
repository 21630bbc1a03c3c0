"""Fixtures of the fault-injection suite: private RabbitMQ nodes, never the shared broker.

A module shares one node (booting one takes seconds); each test gets it back healthy — running,
not paused, answering AMQP — whatever the test before did to it. The fixtures that the
top-level conftest builds on ``broker_url`` are pointed at the private node here, so nothing in
this package can reach the shared broker by accident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiormq
import aiormq.abc
import pytest

from tests.faults.rabbit_node import RabbitCluster, RabbitNode
from tests.faults.support import RESULTS


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitNode]:
    """A private single-node RabbitMQ for the module; stopped and removed afterwards."""
    with RabbitCluster(1, label="node") as cluster:
        yield cluster.nodes[0]


@pytest.fixture
def node(rabbit: RabbitNode) -> RabbitNode:
    """The module's node, up and answering."""
    rabbit.ensure_up()
    return rabbit


@pytest.fixture
async def raw(node: RabbitNode) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """An independent raw client of the module's node (confirm mode): publishes and reads."""
    connection = await aiormq.connect(node.url())
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


@pytest.fixture
def broker_url(node: RabbitNode) -> str:
    """Overrides the shared broker's URL: in this package, the private node's."""
    return node.url()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every scenario's figures, one parseable line each."""
    if not RESULTS:
        return
    terminalreporter.section("fault-injection figures")
    for result in RESULTS:
        terminalreporter.write_line(result.line())
