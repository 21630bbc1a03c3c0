"""The in-memory broker dead-letters, expires and limits queues as RabbitMQ 3.10 does: played
on both, compared (:mod:`tests.differential`).

TTL cases keep their TTLs short and wait for dead letters with ``drain(expect=n)``; what they
assert is the order dead letters come in and their ``x-death`` (the harness drops its time).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.differential import Side, compare

pytestmark = pytest.mark.differential


async def dead_lettering(side: Side, queue: str = "q", **arguments: Any) -> None:
    """Declare ``queue`` dead-lettering into queue ``dlq`` through the default exchange."""
    await side.queue("dlq")
    await side.queue(
        queue,
        {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": side.name("dlq"),
            **arguments,
        },
    )


# ------------------------------------------------------------------------- x-death headers


async def x_death_not_a_list_rejected(side: Side) -> None:
    await dead_lettering(side)
    await side.publish("", side.name("q"), b"bad", headers={"x-death": "not a list"})
    await side.get("q")
    await side.settle("reject")
    await side.drain("dlq", expect=1)


async def x_death_not_a_list_expired(side: Side) -> None:
    await dead_lettering(side, **{"x-message-ttl": 20})
    await side.publish("", side.name("q"), b"bad", headers={"x-death": "not a list"})
    await side.publish("", side.name("q"), b"good")
    await side.drain("dlq", expect=2)


async def first_death_kept_when_x_death_exists(side: Side) -> None:
    await dead_lettering(side)
    earlier = {
        "count": 1,
        "reason": "expired",
        "queue": "elsewhere",
        "exchange": "",
        "routing-keys": ["elsewhere"],
        "time": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    }
    await side.publish("", side.name("q"), b"died before", headers={"x-death": [earlier]})
    await side.get("q")
    await side.settle("reject")
    await side.drain("dlq", expect=1)


async def first_death_of_a_publisher_overwritten(side: Side) -> None:
    await dead_lettering(side)
    forged = {"x-first-death-queue": "forged", "x-first-death-reason": "made up"}
    await side.publish("", side.name("q"), b"forged", headers=forged)
    await side.get("q")
    await side.settle("nack")
    await side.drain("dlq", expect=1)


async def two_deaths_in_a_row(side: Side) -> None:
    await dead_lettering(side, "second", **{"x-message-ttl": 20})
    await side.queue(
        "first",
        {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": side.name("second"),
            "x-message-ttl": 20,
        },
    )
    await side.publish("", side.name("first"), b"twice", expiration="1000")
    await side.drain("dlq", expect=1)


# ------------------------------------------------------------------------------------ TTL


async def per_message_ttl_expires_at_the_head(side: Side) -> None:
    await dead_lettering(side)
    await side.publish("", side.name("q"), b"long", expiration="250")
    await side.publish("", side.name("q"), b"short", expiration="20")
    await side.drain("dlq", expect=2)


async def a_message_without_ttl_holds_back_those_behind(side: Side) -> None:
    await dead_lettering(side)
    # A clock: a message that dead-letters into dlq after 100 ms, long after "short" is due.
    await dead_lettering(side, "clock")
    await side.publish("", side.name("q"), b"forever")
    await side.publish("", side.name("q"), b"short", expiration="20")
    await side.publish("", side.name("clock"), b"tick", expiration="100")
    await side.drain("dlq", expect=1)  # the tick: "short" is still behind "forever"
    await side.get("q")
    await side.settle("ack")
    await side.drain("dlq", expect=1)  # now at the head, "short" is long overdue


async def queue_ttl_and_message_ttl(side: Side) -> None:
    await dead_lettering(side, **{"x-message-ttl": 150})
    await side.publish("", side.name("q"), b"queue ttl")
    await side.publish("", side.name("q"), b"shorter", expiration="20")
    await side.publish("", side.name("q"), b"longer", expiration="1000")
    await side.drain("dlq", expect=3)


async def requeued_after_its_deadline(side: Side) -> None:
    await dead_lettering(side, **{"x-message-ttl": 50})
    await side.publish("", side.name("q"), b"held")
    await side.get("q")
    await side.publish("", side.name("q"), b"later")
    await side.drain("dlq", expect=1)  # "later" expired: "held" is past its deadline too
    await side.settle("reject", requeue=True)  # back at the head, and due
    await side.drain("dlq", expect=1)


async def invalid_expirations(side: Side) -> None:
    await side.queue("q")
    for expiration in (
        "abc", "-1", "1.5", " 100", "100 ", "1_0", "\u0661\u0660\u0660", "", "+100000",
        "0100000", "4294967295", "4294967296", "99999999999999999999",
    ):  # fmt: skip
        await side.publish("", side.name("q"), expiration.encode(), expiration=expiration)
    await side.drain("q")


# ---------------------------------------------------------------------------- length limits


async def max_length_drops_the_head(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length": 2})
    for body in (b"m1", b"m2", b"m3", b"m4"):
        await side.publish("", side.name("q"), body)
    await side.drain("dlq", expect=2)
    await side.drain("q")


async def max_length_bytes_drops_the_head(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc", b"dddd", b"e" * 11):
        await side.publish("", side.name("q"), body)
    await side.drain("dlq", expect=3)
    await side.drain("q")


async def reject_publish(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length": 2, "x-overflow": "reject-publish"})
    for body in (b"m1", b"m2", b"m3"):
        await side.publish("", side.name("q"), body)
    await side.publish("", side.name("q"), b"mandatory", mandatory=True)
    await side.drain("dlq")
    await side.drain("q")


async def reject_publish_bytes(side: Side) -> None:
    await side.queue("big", {"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    await side.publish("", side.name("big"), b"e" * 11)  # alone in the queue
    await dead_lettering(side, **{"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    for body in (b"aaaa", b"bbbb", b"cccc", b"dddd"):
        await side.publish("", side.name("q"), body)
    await side.drain("big")
    await side.drain("q")


async def reject_publish_dlx(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length": 2, "x-overflow": "reject-publish-dlx"})
    for body in (b"m1", b"m2", b"m3"):
        await side.publish("", side.name("q"), body)
    await side.drain("dlq", expect=1)
    await side.drain("q")


async def reject_publish_to_two_queues(side: Side) -> None:
    await side.exchange("x", "fanout")
    await dead_lettering(side, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    await side.queue("other")
    await side.bind("q", "x")
    await side.bind("other", "x")
    await side.publish("x", "", b"m1")
    await side.publish("x", "", b"m2")
    await side.drain("q")
    await side.drain("other")


async def max_length_counts_ready_messages(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length": 1})
    await side.publish("", side.name("q"), b"m1")
    await side.get("q")  # held unacked: not counted
    await side.publish("", side.name("q"), b"m2")
    await side.publish("", side.name("q"), b"m3")
    await side.settle("reject", requeue=True)  # back in the queue, over the limit
    await side.drain("dlq", expect=1)
    await side.drain("q")


async def max_length_zero(side: Side) -> None:
    await dead_lettering(side, **{"x-max-length": 0})
    await dead_lettering(side, "rejecting", **{"x-max-length": 0, "x-overflow": "reject-publish"})
    await side.publish("", side.name("q"), b"dropped")
    await side.publish("", side.name("rejecting"), b"rejected")
    await side.drain("dlq", expect=1)


async def invalid_queue_arguments(side: Side) -> None:
    for number, arguments in enumerate(
        [
            {"x-overflow": "bogus"},
            {"x-overflow": 1},
            {"x-max-length": -1},
            {"x-max-length": "5"},
            {"x-max-length-bytes": 1.5},
            {"x-message-ttl": -1},
            {"x-message-ttl": True},
            {"x-message-ttl": 315360000001},
            {"x-dead-letter-routing-key": "k"},
            {"x-max-length": 0, "x-message-ttl": 315360000000, "x-overflow": "drop-head"},
        ]
    ):
        await side.queue(f"q{number}", arguments)


CASES = [
    x_death_not_a_list_rejected,
    x_death_not_a_list_expired,
    first_death_kept_when_x_death_exists,
    first_death_of_a_publisher_overwritten,
    two_deaths_in_a_row,
    per_message_ttl_expires_at_the_head,
    a_message_without_ttl_holds_back_those_behind,
    queue_ttl_and_message_ttl,
    requeued_after_its_deadline,
    invalid_expirations,
    max_length_drops_the_head,
    max_length_bytes_drops_the_head,
    reject_publish,
    reject_publish_bytes,
    reject_publish_dlx,
    reject_publish_to_two_queues,
    max_length_counts_ready_messages,
    max_length_zero,
    invalid_queue_arguments,
]


@pytest.mark.parametrize("case", CASES)
async def test_case(case) -> None:  # type: ignore[no-untyped-def]
    rabbit, memory = await compare(case)
    assert memory == rabbit
