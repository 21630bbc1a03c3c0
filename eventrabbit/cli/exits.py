"""The command's exit codes, and the error a command raises to end with one.

Theory of operation
-------------------
A command returns an :class:`Exit` or raises :class:`CommandError`; :func:`~.main.main` turns
the error into one line on stderr (``eventrabbit: error: ...``) and its code. Library errors a
command does not catch are mapped by :func:`code_of`: a broker that cannot be reached, refuses
the login or does not answer in time is ``UNREACHABLE``; a configuration the library refuses
and a topology that cannot be set up as asked (a queue that exists with other arguments) are
``USAGE``; what else the broker or the remote side refused is ``REMOTE_FAILED``.
"""

from __future__ import annotations

from enum import IntEnum

from eventrabbit import BrokerUnavailable, ConfigurationError, EventRabbitError, TopologyError


class Exit(IntEnum):
    """What the command's exit status means (README: Command line)."""

    #: Done.
    OK = 0
    #: The remote side failed: an error reply, a nack, unroutable with ``--mandatory``, a
    #: worker that failed.
    REMOTE_FAILED = 1
    #: A usage or configuration error (argparse's own code for bad arguments).
    USAGE = 2
    #: The broker cannot be reached, or did not answer in time.
    UNREACHABLE = 3


class CommandError(Exception):
    """Ends the command with ``code``, printing ``message`` on stderr."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


def code_of(exc: BaseException) -> Exit | None:
    """The exit code of a library error a command let through; ``None``: not one of ours."""
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, BrokerUnavailable | TimeoutError | ConnectionError):
        return Exit.UNREACHABLE
    if isinstance(exc, ConfigurationError | TopologyError):
        return Exit.USAGE
    if isinstance(exc, EventRabbitError):
        return Exit.REMOTE_FAILED
    return None
