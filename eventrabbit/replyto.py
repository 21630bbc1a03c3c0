"""Direct reply-to addresses: which ones a broker can take without closing the connection.

RabbitMQ hands out direct reply-to addresses as ``amq.rabbitmq.reply-to.<pid>.<key>``, where
``<pid>`` is the base64 of the Erlang external term of the consuming channel's process. Before
4.2 the broker decodes that term when a reply is published to it and, when it does not decode
(a forged or mangled address), fails with 541 INTERNAL_ERROR — closing the whole connection,
so every delivery in flight on it comes back. An address that does not decode is therefore
never published on those versions. Later versions (and brokers that do not say their version)
get every address as it is: their format is theirs.
"""

from __future__ import annotations

import base64
import binascii
import functools

from .topology import DIRECT_REPLY_TO

#: The prefix of the addresses RabbitMQ hands out for direct reply-to.
REPLY_PREFIX = DIRECT_REPLY_TO + "."
#: The first version whose direct reply-to is not the pid-encoded one.
NEW_FORMAT_VERSION = (4, 2)

# Erlang's external term format: version byte, pid tags, atom tags (with the width of their
# length field) and the bytes after the node name (id, serial, creation).
_VERSION = 131
_PID_TAILS = {103: 9, 88: 12}  # PID_EXT: 4 + 4 + 1; NEW_PID_EXT: 4 + 4 + 4
_ATOM_LENGTH_WIDTH = {100: 2, 118: 2, 115: 1, 119: 1}


class Addresses:
    """The reply addresses one broker (of ``version``) can take."""

    __slots__ = ("_checked",)

    def __init__(self, version: str) -> None:
        self._checked = _pid_encoded(version)

    def deliverable(self, address: str) -> bool:
        """Whether a reply may be published to ``address``.

        Only direct reply-to addresses with a pid part are checked, and only on versions that
        crash on a bad one; everything else (plain queue names too) may be published.
        """
        if not self._checked or not address.startswith(REPLY_PREFIX):
            return True
        pid, dot, _ = address[len(REPLY_PREFIX) :].partition(".")
        return not dot or _is_pid_term(pid)


def deliverable(address: str, broker_version: str) -> bool:
    """Whether a reply may be published to ``address`` on a broker of ``broker_version``."""
    return Addresses(broker_version).deliverable(address)


def _pid_encoded(version: str) -> bool:
    parts = version.split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return False
    return major_minor < NEW_FORMAT_VERSION


@functools.lru_cache(maxsize=1024)  # a caller's channel sends every request with one pid
def _is_pid_term(encoded: str) -> bool:
    """Whether ``encoded`` is the base64 of an Erlang pid term, exactly."""
    try:
        term = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(term) < 4 or term[0] != _VERSION or term[1] not in _PID_TAILS:
        return False
    width = _ATOM_LENGTH_WIDTH.get(term[2])
    if width is None:
        return False
    length = int.from_bytes(term[3 : 3 + width], "big")
    return len(term) == 3 + width + length + _PID_TAILS[term[1]]
