"""``eventrabbit check [MODULE:CHANNELS]``: can this user work on this broker, and would the
service start cleanly?

Theory of operation
-------------------
Without a target, ``check`` connects to ``--url`` and reports the broker (product, version,
cluster, vhost) and what the user may do (:mod:`.check_broker`); it exits 0 once connected.
With ``MODULE:CHANNELS`` it connects to the broker each channel names — where ``consume``
would connect; ``--url`` is not used — and adds, per channel, its exchange and queues as the
broker has them (:mod:`.check_topology`). It exits 0 only when ``consume`` would get past every
one of them and the user may publish to the default exchange (``consume`` checks that when it
starts), 1 otherwise. Nothing is created: what is missing is reported as ``consume`` would
declare it.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from typing import Any

from eventrabbit import ConsumeChannel, Handle
from eventrabbit.connection import Endpoints, close_connection

from . import output
from .check_broker import Broker, describe
from .check_topology import Finding, check_channel
from .exits import Exit
from .target import load

#: The URL (or a cluster's URLs) of a broker, and the channels checked there.
Group = tuple[str | tuple[str, ...], list[ConsumeChannel]]
#: What was learned of one broker, and of the channels' objects on it.
Report = tuple[Broker, list[Finding]]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``check``."""
    command = commands.add_parser(
        "check",
        parents=[common],
        help="check the broker, the user's permissions and a service's queues",
        description="Connect and report the broker, the vhost and what the user may do "
        "(declare, bind, publish, delete: tried on throwaway objects). With MODULE:CHANNELS, "
        "also each queue and exchange the service would declare: whether it exists, its "
        "depth and consumers, and whether it matches what the service declares. Creates "
        "nothing the service uses.",
        epilog="exit codes: 0 the service would start cleanly (without MODULE:CHANNELS: "
        "connected); 1 a queue or exchange clashes, a needed exchange is missing, or a "
        "permission the service needs is refused; 2 bad arguments; 3 broker unreachable or "
        "login refused",
    )
    command.add_argument("target", metavar="MODULE:CHANNELS", nargs="?")
    command.add_argument("--handle", help="the module's Handle to use, when it has several")
    command.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    handle: Handle | None = None
    groups: list[Group] = [(args.url, [])]
    if args.target is not None:
        target = load(args.target, args.handle)
        handle, groups = target.handle, _by_broker(target.channels)
    reports = asyncio.run(_check(groups, handle))
    ok = all(_ok(broker, findings, handle is not None) for broker, findings in reports)
    data = {
        "ok": ok,
        "brokers": [
            {**asdict(broker), "objects": [asdict(one) for one in findings]}
            for broker, findings in reports
        ],
    }
    output.result(args, data, _text(reports, handle is not None, ok))
    return int(Exit.OK if ok else Exit.REMOTE_FAILED)


def _by_broker(channels: tuple[ConsumeChannel, ...]) -> list[Group]:
    groups: dict[tuple[str, ...], list[ConsumeChannel]] = {}
    for channel in channels:
        groups.setdefault(channel.urls, []).append(channel)
    return list(groups.items())


async def _check(groups: list[Group], handle: Handle | None) -> list[Report]:
    reports = []
    for url, channels in groups:
        connection = await Endpoints(url).connect()
        try:
            broker = await describe(connection)
            findings: list[Finding] = []
            seen: set[str] = set()
            for channel in channels:
                assert handle is not None
                config = channel.queue_config or handle.queue_config
                found = await check_channel(connection, channel, config, handle.retry_config, seen)
                findings.extend(found)
        finally:
            await close_connection(connection)
        reports.append((broker, findings))
    return reports


def _ok(broker: Broker, findings: list[Finding], service: bool) -> bool:
    return not service or (
        broker.permissions["publish"] is not False and all(one.ok for one in findings)
    )


def _text(reports: list[Report], service: bool, ok: bool) -> str:
    lines = []
    for broker, findings in reports:
        cluster = f" (cluster {broker.cluster})" if broker.cluster else ""
        may = ", ".join(f"{what} {_yes(value)}" for what, value in broker.permissions.items())
        lines += [
            f"broker       {broker.url}",
            f"server       {broker.product} {broker.version}{cluster}",
            f"vhost        {broker.vhost}",
            f"permissions  {may} (tried on throwaway objects)",
        ]
        width = max((len(f"{one.kind} {one.name!r}") for one in findings), default=0)
        for one in findings:
            label = f"{one.kind} {one.name!r}".ljust(width)
            lines.append(f"{label}  {'ok' if one.ok else one.state.upper():8}  {_detail(one)}")
    if service:
        problems = [
            f"{one.kind} {one.name!r}" for _, found in reports for one in found if not one.ok
        ]
        problems += [
            f"publish to the default exchange at {b.url}"
            for b, _ in reports
            if b.permissions["publish"] is False
        ]
        lines.append(
            "the service would start cleanly"
            if ok
            else f"the service would not start: {', '.join(problems)}"
        )
    return "\n".join(lines)


def _detail(one: Finding) -> str:
    if one.messages is None:
        return one.detail
    return f"{one.detail}; {_count(one.messages, 'message')}, {_count(one.consumers, 'consumer')}"


def _count(number: int | None, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def _yes(value: bool | None) -> str:
    return "not tried" if value is None else "yes" if value else "NO"
