"""An in-memory RabbitMQ for testing eventrabbit services without a broker.

Point a service at ``memory://`` (or ``memory://<name>``) and the same ``events`` and
``handle`` run on a broker in this process: exchanges route as RabbitMQ's do (default,
direct, fanout, topic, headers), consumers, producers, functions, ``reply_to``,
``events.call``, retries through ``<queue>.delay`` and ``<queue>.dlq`` all work, and the test
can publish raw bodies and look at what was published where::

    from eventrabbit import build_event_dependencies
    from eventrabbit.common import ConsumeChannel
    from eventrabbit.testing import consuming, memory_broker

    async def test_greeting() -> None:
        with memory_broker() as broker:
            events, handle = build_event_dependencies(broker.url)

            @events.consumer("GREET")
            async def greet(name: str) -> str:
                return f"hello {name}"

            async with consuming(handle, ConsumeChannel(broker.url, "greetings")):
                assert await events.call("GREET", {"name": "Ada"}, key="greetings") == "hello Ada"

Brokers are per process and per name: every connection to ``memory://orders`` shares one
:class:`MemoryBroker` (:func:`get_broker`). :func:`memory_broker` hands out a fresh one per
test; :func:`redirect_amqp` runs services built with an ``amqp://`` URL on it unchanged.

The package, from the bottom up — each module imports only modules before it here:

- parts that know no broker: ``version`` (the RabbitMQ emulated), ``field_values`` (field values
  as RabbitMQ compares them), ``wire_arguments`` (binding arguments as sent), ``routing`` (how
  exchanges route), ``refusals`` (RabbitMQ's errors), ``messages``, ``deaths`` (dead-letter
  headers), ``limits`` (queue length limits), ``arguments`` (queue arguments), ``changes``
  (the broker's change notification), ``closable``, ``expiry`` (message TTL), ``ready`` (a
  queue's ready messages: order, TTL at the head, limits), ``guard`` (what an error does to
  a channel), ``sender_selected`` (``CC``/``BCC`` routing keys),
  ``exchange_arguments`` (what an exchange declare checks), ``forwarding`` (routing across
  exchange bindings and alternate exchanges);
- the broker: ``queues`` (a queue and its consumers), ``streams`` (a stream: a log each
  consumer reads from an offset of its own), ``reply_to`` (direct reply-to),
  ``exchanges``, ``topology`` (exchanges, queues, bindings), ``flow`` (publishing,
  dead-lettering), ``connections``, ``broker`` (the :class:`MemoryBroker` tests use, made of
  those parts) and ``brokers`` (brokers by name);
- the client side: ``declaring``, ``publishing`` and ``deliveries`` (parts of a channel),
  ``channel``, ``connection``, ``transport`` (``memory://`` and :func:`redirect_amqp`) and
  ``service`` (:func:`consuming`).
"""

from __future__ import annotations

from ..connection import register_transport
from .broker import SCHEME, MemoryBroker
from .brokers import forget_broker, get_broker, memory_broker
from .messages import Message
from .routing import Binding
from .service import consuming
from .transport import connect_memory, redirect_amqp

# memory:// URLs work from the moment this package is imported.
register_transport(SCHEME, connect_memory)

__all__ = [
    "Binding",
    "MemoryBroker",
    "Message",
    "consuming",
    "forget_broker",
    "get_broker",
    "memory_broker",
    "redirect_amqp",
]
