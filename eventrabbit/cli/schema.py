"""``eventrabbit asyncapi MODULE:CHANNELS``: print a service's AsyncAPI 3.0.0 document."""

from __future__ import annotations

import argparse
from typing import Any

from eventrabbit import asyncapi_json, asyncapi_yaml

from .exits import CommandError, Exit
from .target import load


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``asyncapi``."""
    command = commands.add_parser(
        "asyncapi",
        parents=[common],
        help="print a service's AsyncAPI 3.0.0 document",
        description="Import MODULE and print the AsyncAPI 3.0.0 document of its handlers and "
        "the queues CHANNELS names (JSON; --yaml needs PyYAML).",
    )
    command.add_argument("target", metavar="MODULE:CHANNELS")
    command.add_argument("--handle", help="the module's Handle to use, when it has several")
    command.add_argument("--title", default="eventrabbit service")
    command.add_argument("--version", default="0.0.0", dest="doc_version")
    command.add_argument("--yaml", action="store_true", help="YAML instead of JSON")
    command.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    target = load(args.target, args.handle)
    if target.events is None:
        raise CommandError(f"{target.module.__name__} defines no Events", Exit.USAGE)
    write = asyncapi_yaml if args.yaml else asyncapi_json
    try:
        text = write(
            target.events,
            *target.channels,
            title=args.title,
            version=args.doc_version,
            handle=target.handle,
        )
    except ModuleNotFoundError as exc:
        raise CommandError(f"--yaml needs PyYAML: {exc}", Exit.USAGE) from None
    print(text)
    return 0
