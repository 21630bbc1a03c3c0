"""The exchanges of the in-memory broker, with RabbitMQ's rules for declaring, binding and
deleting them, and routing through them (the rules of one exchange are :mod:`.routing`'s,
those across exchanges :mod:`.forwarding`'s).

Every broker has the ``amq.*`` exchanges, which cannot be declared anew or deleted; the
default exchange ``""`` exists without being listed and cannot be declared, bound to or
from, or deleted. A second declare must agree on the type, durability, ``internal`` and
``alternate-exchange`` (406 otherwise, :mod:`.exchange_arguments`). An exchange may be bound
to another (``exchange.bind``), itself included; binding from or to one that does not exist
is 404 (the source is named first), removing a binding that does not exist is fine. Deleting
an exchange removes its bindings, both those from it and those to it. Nobody may publish to
an ``internal`` exchange (403); it only gets messages through exchange bindings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiormq.exceptions import ChannelAccessRefused, ConnectionCommandInvalid

from .exchange_arguments import alternate_exchange, invalid_alternate, mismatch
from .forwarding import reach
from .refusals import default_exchange_refused, not_found, precondition_failed, reserved
from .routing import EXCHANGE_TYPES, Binding, x_match_error

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
    """An exchange and its bindings, in the order they were made.

    :param bindings: its bindings to queues.
    :param exchange_bindings: its bindings to exchanges; there ``Binding.queue`` names the
        destination exchange.
    """

    name: str
    type: str
    durable: bool = True
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    exchange_bindings: list[Binding] = field(default_factory=list)

    @property
    def alternate(self) -> str | None:
        """Where the messages it cannot route go (``alternate-exchange``), if anywhere."""
        return alternate_exchange(self.arguments)

    def equivalence(self) -> dict[str, Any]:
        """What a second declare must agree on."""
        return {
            "type": self.type,
            "durable": self.durable,
            "internal": self.internal,
            "arguments": self.arguments,
        }


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

    def declare(
        self,
        name: str,
        kind: str,
        durable: bool,
        passive: bool,
        arguments: Mapping[str, Any] | None = None,
        internal: bool = False,
    ) -> None:
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
        declared = Exchange(name, kind, durable, internal, dict(arguments or {}))
        if existing is None:
            if name.startswith("amq."):
                raise reserved("exchange", name)
            if why := invalid_alternate(name, declared.arguments):
                raise precondition_failed(why)
            self.by_name[name] = declared
        elif why := mismatch(name, existing.equivalence(), declared.equivalence()):
            raise precondition_failed(why)

    def delete(self, name: str) -> None:
        """``exchange.delete``: the exchange and its bindings go (a missing one is fine)."""
        if name == "" or name in PREDECLARED:
            raise ChannelAccessRefused(
                f"ACCESS_REFUSED - operation not permitted on exchange '{name}'"
            )
        if self.by_name.pop(name, None) is not None:
            for exchange in self.by_name.values():
                exchange.exchange_bindings = [
                    b for b in exchange.exchange_bindings if b.queue != name
                ]

    def unbind_queue(self, queue: str) -> None:
        """``queue`` was deleted: every binding to it goes."""
        for exchange in self.by_name.values():
            exchange.bindings = [b for b in exchange.bindings if b.queue != queue]

    # ------------------------------------------------------------ exchange-to-exchange

    def bind(
        self, destination: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        """``exchange.bind``: ``source`` routes on to ``destination`` what matches."""
        if destination == "" or source == "":
            raise default_exchange_refused()
        target = self.get(source)
        self.get(destination)
        if target.type == "headers" and (error := x_match_error(arguments)):
            raise precondition_failed(error)
        binding = Binding(destination, key, dict(arguments) if arguments else None)
        if binding not in target.exchange_bindings:
            target.exchange_bindings.append(binding)

    def unbind(
        self, destination: str, source: str, key: str, arguments: Mapping[str, Any] | None
    ) -> None:
        """``exchange.unbind`` (a binding, or an exchange, that does not exist is fine)."""
        if destination == "" or source == "":
            raise default_exchange_refused()
        target = self.by_name.get(source)
        if target is not None:
            binding = Binding(destination, key, dict(arguments) if arguments else None)
            target.exchange_bindings = [b for b in target.exchange_bindings if b != binding]

    # ------------------------------------------------------------------------ routing

    def publishable(self, name: str) -> Exchange:
        """The exchange ``name``, which a client may publish to.

        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        :raises aiormq.exceptions.ChannelAccessRefused: an internal exchange.
        """
        found = self.by_name.get(name)
        if found is None:
            raise not_found("exchange", name)
        if found.internal:
            raise ChannelAccessRefused(
                f"ACCESS_REFUSED - cannot publish to internal exchange '{name}' in vhost '/'"
            )
        return found

    def route(self, name: str, keys: Sequence[str], headers: Mapping[str, Any] | None) -> list[str]:
        """The queues a message published to ``name`` with routing ``keys`` reaches, each
        once, through exchange bindings and alternate exchanges.

        :raises aiormq.exceptions.ChannelNotFoundEntity: no such exchange.
        """
        self.get(name)
        return reach(name, self.by_name, keys, headers)
