"""Routing across exchanges, as RabbitMQ 3.10 does it: through exchange-to-exchange
bindings and alternate exchanges. A pure function over the exchanges; no I/O.

Theory of operation
-------------------
A message published to an exchange is routed there with each of its routing keys (its own
and its ``CC``/``BCC`` ones, :mod:`.sender_selected`); what matches are queues and, through
exchange bindings, other exchanges, which route it in turn with the same keys. An exchange
where nothing matches — no queue, no exchange — hands the message to its alternate exchange
instead, if it names one. Every exchange is visited at most once per message (the one
published to included), so cycles of bindings or of alternate exchanges end, and every queue
gets the message at most once however many paths lead to it. A destination that does not
exist (an alternate exchange never declared) is skipped. An exchange binding that matches
counts as routed even if the exchange behind it drops the message: its alternate exchange
is not asked then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .routing import Binding, route


class Node(Protocol):
    """An exchange as the walk sees it (:class:`~.exchanges.Exchange`)."""

    @property
    def type(self) -> str:
        """``direct``, ``fanout``, ``topic`` or ``headers``."""
        ...

    @property
    def bindings(self) -> Sequence[Binding]:
        """Its bindings to queues."""
        ...

    @property
    def exchange_bindings(self) -> Sequence[Binding]:
        """Its bindings to exchanges (``Binding.queue`` names the destination exchange)."""
        ...

    @property
    def alternate(self) -> str | None:
        """Its alternate exchange, if it names one."""
        ...


def _matches(
    node: Node, bindings: Sequence[Binding], keys: Sequence[str], headers: Mapping[str, Any] | None
) -> list[str]:
    found: dict[str, None] = {}
    for key in keys:
        found.update(dict.fromkeys(route(node.type, bindings, key, headers)))
    return list(found)


def reach(
    start: str,
    exchanges: Mapping[str, Node],
    keys: Sequence[str],
    headers: Mapping[str, Any] | None = None,
) -> list[str]:
    """The queues a message published to exchange ``start`` with routing ``keys`` reaches,
    each once, in the order they were found (``[]``: unroutable)."""
    seen = {start}
    work = [start]
    queues: dict[str, None] = {}
    while work:
        node = exchanges.get(work.pop())
        if node is None:
            continue
        bound = _matches(node, node.bindings, keys, headers)
        queues.update(dict.fromkeys(bound))
        onward = _matches(node, node.exchange_bindings, keys, headers)
        if not onward and not bound:
            onward = [node.alternate] if node.alternate is not None else []
        # RabbitMQ keeps a stack: the last exchange found is routed through first.
        for name in onward:
            if name not in seen:
                seen.add(name)
                work.append(name)
    return list(queues)
