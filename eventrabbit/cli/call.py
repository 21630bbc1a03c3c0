"""``eventrabbit call ACTION [DATA]``: make an RPC call as ``events.call`` does, print the result.

Theory of operation
-------------------
The request goes through the library's RPC client (direct reply-to, confirmed, transient,
expiring after ``--timeout``). The result is printed as JSON on stdout — with or without
``--json``, since a result is JSON already. An error reply (the handler failed for good) is
printed on stderr (and, with ``--json``, as ``{"error": {"type", "message"}}`` on stdout) and
exits 1, as does a request no queue receives; no reply within ``--timeout`` exits 3, like a
broker that cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from eventrabbit import RemoteError, RequestError, build_event_dependencies
from eventrabbit.rpc import DEFAULT_CALL_TIMEOUT

from .exits import CommandError, Exit
from .publish_input import failure_code, parse_object, seconds


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``call``."""
    command = commands.add_parser(
        "call",
        parents=[common],
        help="make an RPC call and print its result",
        description='Send {"action": ACTION, "data": DATA} as an RPC request (DATA a JSON '
        "object, default {}) and print the handler's result as JSON. With the default exchange "
        "(no --exchange), --key is the server's queue name.",
        epilog="exit codes: 0 a result; 1 an error reply, or no queue receives the request; "
        "2 bad arguments; 3 no reply within --timeout, broker unreachable, or login refused",
    )
    command.add_argument("action", metavar="ACTION")
    command.add_argument("data", metavar="DATA", nargs="?", default="{}")
    command.add_argument("--exchange", default="", help="where to publish (default: '')")
    command.add_argument("--key", default="", help="the routing key (default: '')")
    command.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_CALL_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the reply (default {DEFAULT_CALL_TIMEOUT})",
    )
    command.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    data = parse_object(args.data, "DATA")
    result = asyncio.run(_call(args, data))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
    return int(Exit.OK)


async def _call(args: argparse.Namespace, data: dict[str, Any]) -> Any:
    events, _ = build_event_dependencies(args.url, idle_timeout=None)
    try:
        return await events.call(
            args.action, data, exchange_name=args.exchange, key=args.key, timeout=args.timeout
        )
    except RemoteError as exc:
        if args.json:
            error = {"error": {"type": exc.type, "message": exc.message}}
            print(orjson.dumps(error, option=orjson.OPT_INDENT_2).decode(), flush=True)
        raise CommandError(
            f"the handler of {args.action!r} failed: {exc.type}: {exc.message}",
            Exit.REMOTE_FAILED,
        ) from None
    except RequestError as exc:
        raise CommandError(str(exc), failure_code(exc)) from None
    finally:
        await events.close()
