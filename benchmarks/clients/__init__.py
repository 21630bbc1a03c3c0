"""The four clients, each doing every workload its idiomatic way, and eventrabbit with its
instrumentation hooks on.

``raw`` is the reference: a hand-written aiormq loop. Every other figure is reported as a ratio
to it.
"""

from __future__ import annotations

from importlib import import_module

from .base import Client

_MODULES = {
    "raw": "raw_aiormq",
    "eventrabbit": "eventrabbit_client",
    "aio-pika": "aio_pika_client",
    "faststream": "faststream_client",
    "eventrabbit+prometheus": "instrumented:PROMETHEUS",
    "eventrabbit+otel": "instrumented:OTEL",
}


def get(name: str) -> Client:
    """The client called ``name``; imported only when asked, so a missing extra fails late."""
    module_name, _, attribute = _MODULES[name].partition(":")
    module = import_module(f"{__name__}.{module_name}")
    client: Client = getattr(module, attribute or "CLIENT")
    return client


def names() -> tuple[str, ...]:
    """Every client's name."""
    return tuple(_MODULES)
