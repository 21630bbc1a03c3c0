"""The command's parser and entry point: one sub-command per module, registered in a table.

Theory of operation
-------------------
Each command module has ``register(commands, common)``: it adds its parser (with ``common`` as
a parent, which gives ``--url`` and ``--json``) and sets ``command`` to a function
``(args) -> int``. :func:`main` parses, calls it, and turns what it raises into an exit code
and one line on stderr (:mod:`.exits`); a traceback is printed only for a bug. Passwords never
reach the output: URLs are printed censored.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import exits

#: The broker a command talks to when neither ``--url`` nor ``$EVENTRABBIT_URL`` says.
DEFAULT_URL = "amqp://guest:guest@localhost:5672/"

Register = Callable[[Any, argparse.ArgumentParser], None]


def _commands() -> list[Register]:
    # Imported here: ``eventrabbit --help`` should not pay for every command's imports twice.
    from . import call, check, dlq, publish, replay, run, schema

    return [
        run.register,
        publish.register,
        call.register,
        dlq.register,
        check.register,
        schema.register,
        replay.register,
    ]


#: ``scheme://user:password@`` in free text (an argparse error quoting an argument).
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@]*@", re.IGNORECASE)


def censor_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced."""
    return _PASSWORD.sub(r"\1******@", text)


class _Parser(argparse.ArgumentParser):
    """argparse, but its usage errors never show a password: they quote the offending
    argument, which may be a URL given in the wrong place."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(exits.Exit.USAGE), f"{self.prog}: error: {censor_text(message)}\n")


def _options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # The top level sets the defaults; a command's copy (SUPPRESS) only overrides them when
    # given, so ``eventrabbit --url U publish ...`` and ``eventrabbit publish --url U ...``
    # mean the same.
    parser.add_argument(
        "--url",
        default=os.environ.get("EVENTRABBIT_URL", DEFAULT_URL) if top else argparse.SUPPRESS,
        help="the broker's URL (default: $EVENTRABBIT_URL, then the local guest broker)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON instead of text",
    )


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    common = _Parser(add_help=False)
    _options(common, top=False)
    top = _Parser(
        prog="eventrabbit",
        description="Run eventrabbit services, publish, call, and deal with dead letters.",
        epilog="exit codes: 0 done; 1 the remote side failed; 2 usage or configuration error; "
        "3 broker unreachable or timed out",
    )
    _options(top, top=True)
    commands = top.add_subparsers(dest="name", required=True, metavar="COMMAND")
    for register in _commands():
        register(commands, common)
    return top


def _one_shot_logging() -> None:
    """Warnings on stderr, one line each; aiormq's own lines only when critical: what went
    wrong is the command's error line, and aiormq would repeat it with its internals."""
    logging.basicConfig(level=logging.WARNING, format="eventrabbit: %(levelname)s: %(message)s")
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: ``sys.argv[1:]``) names; its exit code."""
    args = parser().parse_args(argv)
    if args.name != "run":  # run configures logging from its own options
        _one_shot_logging()
    try:
        return int(args.command(args))
    except KeyboardInterrupt:
        print("eventrabbit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        code = exits.code_of(exc)
        if code is None:
            raise  # a bug: the traceback is what helps
        print(f"eventrabbit: error: {censor_text(str(exc))}", file=sys.stderr)
        return int(code)
