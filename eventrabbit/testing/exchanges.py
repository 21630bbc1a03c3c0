"""The exchanges of the in-memory broker, with RabbitMQ's rules for declaring and deleting
them, and routing through one (the rules themselves are :mod:`.routing`'s).

Every broker has the ``amq.*`` exchanges, which cannot be declared anew or deleted; the
default exchange ``""`` exists without being listed and cannot be declared, bound to or
deleted. A second declare must agree on the type and durability (406 otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiormq.exceptions import ChannelAccessRefused, ConnectionCommandInvalid

from .refusals import default_exchange_refused, not_found, precondition_failed, reserved
from .routing import EXCHANGE_TYPES, Binding, route

#: The exchanges every RabbitMQ has, and their types.
PREDECLARED = {
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}


@dataclass(slots=True, eq=False)
class Exchange:
    """An exchange and its bindings, in the order they were made."""

    name: str
    type: str
    durable: bool = True
    bindings: list[Binding] = field(default_factory=list)

    def route(self, routing_key: str, headers: Mapping[str, Any] | None) -> list[str]:
        """The queues a message published here reaches, each once, in binding order."""
        return route(self.type, self.bindings, routing_key, headers)


class Exchanges:
    """The exchanges of one broker, by name (:attr:`by_name`)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Exchange] = {}
        self.clear()

    def clear(self) -> None:
        """Forget every exchange but the ``amq.*`` ones, which start without bindings."""
        self.by_name = {name: Exchange(name, kind) for name, kind in PREDECLARED.items()}

    def get(self, name: str) -> Exchange:
        """The exchange ``name``, to bind to or route through.

        :raises aiormq.exceptions.ChannelAccessRefused: the default exchange.
        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        """
        if name == "":
            raise default_exchange_refused()
        found = self.by_name.get(name)
        if found is None:
            raise not_found("exchange", name)
        return found

    def declare(self, name: str, kind: str, durable: bool, passive: bool) -> None:
        """``exchange.declare``; ``passive`` only checks that it exists."""
        existing = self.by_name.get(name)
        if passive:
            if name and existing is None:
                raise not_found("exchange", name)
            return
        if name == "":
            raise default_exchange_refused()
        if kind not in EXCHANGE_TYPES:
            raise ConnectionCommandInvalid(f"COMMAND_INVALID - unknown exchange type '{kind}'")
        if existing is None:
            if name.startswith("amq."):
                raise reserved("exchange", name)
            self.by_name[name] = Exchange(name, kind, durable)
            return
        for arg, old, new in (
            ("type", existing.type, kind),
            ("durable", existing.durable, durable),
        ):
            if old != new:
                raise precondition_failed(
                    f"inequivalent arg '{arg}' for exchange '{name}' in vhost '/': "
                    f"received '{new}' but current is '{old}'"
                )

    def delete(self, name: str) -> None:
        """``exchange.delete``: the exchange and its bindings go (a missing one is fine)."""
        if name == "" or name in PREDECLARED:
            raise ChannelAccessRefused(
                f"ACCESS_REFUSED - operation not permitted on exchange '{name}'"
            )
        self.by_name.pop(name, None)

    def unbind_queue(self, queue: str) -> None:
        """``queue`` was deleted: every binding to it goes."""
        for exchange in self.by_name.values():
            exchange.bindings = [b for b in exchange.bindings if b.queue != queue]
