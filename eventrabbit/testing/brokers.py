"""The in-memory brokers of this process, by name, and a fresh one per test.

One :class:`~.broker.MemoryBroker` per name — the host of a ``memory://<name>`` URL, ``""``
for ``memory://`` — and process: every connection to that URL shares it (:func:`get_broker`),
whichever event loop it runs on. :func:`memory_broker` hands a test a broker of its own and
forgets it afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from yarl import URL

from ..errors import ConfigurationError
from .broker import SCHEME, MemoryBroker

_BROKERS: dict[str, MemoryBroker] = {}


def broker_name(url: str) -> str:
    """The broker name in a ``memory://<name>`` URL (``""`` for ``memory://``).

    :raises ConfigurationError: not a ``memory://`` URL.
    """
    parsed = URL(url)
    if parsed.scheme != SCHEME:
        raise ConfigurationError(f"{url!r} is not a {SCHEME}:// URL")
    return parsed.host or ""


def get_broker(url: str = f"{SCHEME}://") -> MemoryBroker:
    """The broker a ``memory://<name>`` URL connects to, made on first use."""
    name = broker_name(url)
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(name)
    return broker


def forget_broker(broker: MemoryBroker) -> None:
    """Reset ``broker`` and forget its name: the next connection to it gets a fresh one."""
    broker.reset()
    if _BROKERS.get(broker.name) is broker:
        del _BROKERS[broker.name]


@contextlib.contextmanager
def memory_broker(name: str | None = None) -> Iterator[MemoryBroker]:
    """A fresh broker for one test, forgotten (connections dropped, state gone) on exit.

    :param name: the broker's name (its URL is ``memory://<name>``); default: a unique one.

    As a pytest fixture::

        @pytest.fixture
        def broker():
            with memory_broker() as broker:
                yield broker
    """
    broker = get_broker(f"{SCHEME}://{name or 'test-' + secrets.token_hex(6)}")
    broker.reset()
    try:
        yield broker
    finally:
        forget_broker(broker)
