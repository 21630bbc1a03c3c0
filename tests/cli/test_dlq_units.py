"""The pure parts of ``eventrabbit dlq`` as tables: the queue a name means, what a dead letter
says about itself, selection, where it goes back to and the properties it goes back with
(byte for byte, less the failure and broker headers) — eventrabbit.cli.dlq_rules; the nacks
that give back what a walk held — eventrabbit.cli.dlq_held."""

from __future__ import annotations

import gzip
import struct

import pytest

from eventrabbit.cli.dlq_held import Held
from eventrabbit.cli.dlq_kind import too_deep
from eventrabbit.cli.dlq_rules import (
    NO_ACTION,
    NO_ERROR,
    NO_QUEUE,
    Keep,
    Letter,
    Move,
    Selection,
    Skip,
    dead_letter_queue,
    decide,
    error_class,
    letter,
    preview,
    redriven,
)
from eventrabbit.properties import parse_properties
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import every_type_table


def dead(
    action: str | None = "PAY", error: str | None = "ValueError: boom", **kw: object
) -> Letter:
    fields: dict[str, object] = {
        "message_id": "m1",
        "action": action,
        "retry_count": 2,
        "error": error,
        "queue": "orders",
        "body": b"{}",
    }
    fields.update(kw)
    return Letter(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders.dlq"),
        ("orders.dlq", "orders.dlq"),
        ("orders.delay", "orders.delay.dlq"),
        ("x.dlq.dlq", "x.dlq.dlq"),
        ("dlq", "dlq.dlq"),
    ],
)
def test_a_queue_name_means_its_dead_letter_queue(name: str, expected: str) -> None:
    assert dead_letter_queue(name) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("ValueError: boom", "ValueError"),
        ("RuntimeError: a: b", "RuntimeError"),
        ("body is not valid JSON: unexpected character: line 1", "body is not valid JSON"),
        ("no handler for action 'X'", "no handler for action 'X'"),
        (": nothing before", ": nothing before"),
        ("", ""),
        (None, NO_ERROR),
    ],
)
def test_the_error_class_is_the_text_before_the_first_colon(
    error: str | None, expected: str
) -> None:
    assert error_class(error) == expected


HEADERS = {
    "x-eventrabbit-error": "ValueError: boom",
    "x-eventrabbit-queue": "orders",
    "x-retry-count": 3,
    "tenant": "acme",
}


@pytest.mark.parametrize(
    ("headers", "body", "encoding", "expected"),
    [
        (HEADERS, b'{"action": "PAY", "data": {}}', None, ("PAY", 3, "ValueError: boom", "orders")),
        (None, b'{"action": "PAY", "data": {}}', None, ("PAY", None, None, None)),
        ({}, b"not json", None, (None, None, None, None)),
        ({}, b'{"action": 1, "data": {}}', None, (None, None, None, None)),
        ({}, gzip.compress(b'{"action": "Z", "data": {}}'), "gzip", ("Z", None, None, None)),
        ({}, b'{"action": "Z", "data": {}}', "rot13", (None, None, None, None)),
        (
            {"x-retry-count": "3", "x-eventrabbit-error": b"E: \xff", "x-eventrabbit-queue": 7},
            b"",
            None,
            (None, None, "E: \ufffd", None),
        ),
    ],
    ids=[
        "eventrabbit's",
        "no headers",
        "not JSON",
        "odd action",
        "gzip",
        "unknown encoding",
        "odd header types",
    ],
)
def test_a_letter_reads_its_story_from_headers_and_body(
    headers: dict[str, object] | None,
    body: bytes,
    encoding: str | None,
    expected: tuple[object, ...],
) -> None:
    read = letter(headers, "m1", body, encoding)
    assert (read.action, read.retry_count, read.error, read.queue) == expected
    assert read.message_id == "m1"
    assert read.body == body


@pytest.mark.parametrize(
    ("subject", "selection", "expected"),
    [
        (dead(), Selection(), Move("orders")),
        (dead(), Selection(action="PAY"), Move("orders")),
        (dead(), Selection(action="REFUND"), Keep()),
        (dead(action=None), Selection(action=NO_ACTION), Keep()),  # the label is no action
        (dead(), Selection(error_contains="boom"), Move("orders")),
        (dead(), Selection(error_contains="Boom"), Keep()),  # case counts
        (dead(error=None), Selection(error_contains=""), Keep()),  # no error matches nothing
        (dead(), Selection(action="PAY", error_contains="nope"), Keep()),  # both must match
        (dead(queue=None), Selection(), Skip(NO_QUEUE)),
        (dead(queue=None), Selection(action="REFUND"), Keep()),  # not selected: not skipped
        (dead(queue=""), Selection(), Skip("x-eventrabbit-queue is not a queue name")),
        (dead(queue="q" * 256), Selection(), Skip("x-eventrabbit-queue is not a queue name")),
        (dead(queue="other"), Selection(), Move("other")),  # the header says where
    ],
)
def test_what_redrive_does_with_a_letter(
    subject: Letter, selection: Selection, expected: object
) -> None:
    assert decide(subject, selection) == expected


def props(flags: int, *parts: bytes) -> bytes:
    return struct.pack(">H", flags) + b"".join(parts)


FAILURE = (
    entry(b"x-eventrabbit-error", "S", long(b"ValueError: boom"))
    + entry(b"x-retry-count", "l", struct.pack(">q", 2))
    + entry(b"x-eventrabbit-queue", "S", long(b"orders"))
)
BROKER = entry(b"x-delivery-count", "l", struct.pack(">q", 1))
KEPT = entry(b"x-eventrabbit-user-id", "S", long(b"alice")) + entry(
    b"x-eventrabbit-dropped-headers", "S", long(b"big")
)
ID = b"\x02id"  # message_id "id" (0x0080)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # Every field type stays, in place, byte for byte; the failure headers go.
        (
            props(0x2000 | 0x0080, long(every_type_table() + FAILURE), ID),
            props(0x2000 | 0x0080, long(every_type_table()), ID),
        ),
        # Failure headers first or in between: the others keep their order.
        (
            props(0x2000, long(FAILURE + KEPT + BROKER)),
            props(0x2000, long(KEPT)),
        ),
        # Nothing but eventrabbit's and the broker's: no headers table at all.
        (props(0x8000 | 0x2000, b"\x04json", long(FAILURE + BROKER)), props(0x8000, b"\x04json")),
        # No headers: as it is.
        (
            props(0x0080 | 0x0040, ID, struct.pack(">Q", 2**64 - 1)),
            props(0x0080 | 0x0040, ID, struct.pack(">Q", 2**64 - 1)),
        ),
    ],
    ids=["every type", "order kept", "only failure headers", "no headers"],
)
def test_a_redriven_letter_keeps_every_byte_but_the_failure_headers(
    before: bytes, after: bytes
) -> None:
    assert redriven(parse_properties(before)).encode() == after


@pytest.mark.parametrize(
    ("body", "size", "expected"),
    [
        (b'{"a": 1}', 60, '{"a": 1}'),
        (b"abcdef", 3, "abc..."),
        (b"line\nnext\t", 60, "line\\nnext\\t"),
        ("zürich".encode(), 60, "zürich"),
        (b"\xff\x00", 60, "\\xff\\x00"),
        ("ü".encode(), 1, "\\xc3..."),  # a character cut in half is escaped
    ],
)
def test_a_preview_is_one_printable_line(body: bytes, size: int, expected: str) -> None:
    assert preview(body, size) == expected


# --- the nacks that give back what a walk held (eventrabbit.cli.dlq_held) -------------------

#: Steps: ("start", consumer), ("send", consumer, tag), ("read", consumer, tag), ("ack", tag).
Step = tuple[object, ...]


def play(steps: list[Step]) -> Held:
    held = Held()
    for kind, *args in steps:
        if kind == "start":
            held.started(str(args[0]))
        elif kind == "send":
            held.delivered(str(args[0]), int(str(args[1])))
        elif kind == "read":
            held.reading(str(args[0]), int(str(args[1])))
        else:
            held.acked(int(str(args[0])))
    return held


def sent(consumer: str, *tags: int) -> list[Step]:
    return [("send", consumer, tag) for tag in tags]


@pytest.mark.parametrize(
    ("steps", "nacks", "here"),
    [
        ([], [], 0),
        # One consumer, nothing read yet: everything it was sent goes back.
        ([("start", "a"), *sent("a", 1, 2, 3)], [3], 0),
        # Read 1 (held), 2 acked, 3 read ahead: up to 3.
        (
            [("start", "a"), *sent("a", 1, 2, 3), ("read", "a", 1), ("read", "a", 2), ("ack", 2)],
            [3],
            1,
        ),
        # All read; the last acked: up to the last held, never the acked tag.
        (
            [("start", "a"), *sent("a", 1, 2), ("read", "a", 1), ("read", "a", 2), ("ack", 2)],
            [1],
            1,
        ),
        # All read and acked: nothing to give back.
        ([("start", "a"), *sent("a", 1), ("read", "a", 1), ("ack", 1)], [], 0),
        # The one being read when the walk ended, not acked (Ctrl-C mid-move): held.
        ([("start", "a"), *sent("a", 1), ("read", "a", 1)], [1], 1),
        # Two consumers: one nack each, oldest first; the first's acked last tag skipped.
        (
            [
                ("start", "a"),
                *sent("a", 1, 2, 3),
                ("read", "a", 1),
                ("read", "a", 2),
                ("read", "a", 3),
                ("ack", 3),
                ("start", "b"),
                *sent("b", 4, 5),
                ("read", "b", 4),
            ],
            [2, 5],
            1,
        ),
        # A consumer whose deliveries were all acked gets no nack; one sent nothing neither.
        (
            [
                ("start", "a"),
                *sent("a", 1),
                ("read", "a", 1),
                ("ack", 1),
                ("start", "b"),
                ("start", "c"),
                *sent("c", 2),
            ],
            [2],
            0,
        ),
    ],
    ids=[
        "nothing",
        "unread",
        "held and read ahead",
        "last acked",
        "all acked",
        "in flight",
        "two consumers",
        "empty consumers",
    ],
)
def test_what_a_walk_held_goes_back_with_one_nack_per_consumer(
    steps: list[Step], nacks: list[int], here: int
) -> None:
    held = play(steps)
    assert held.nacks() == nacks
    assert held.here == here  # what the newest consumer holds (nacks() settles the last read)


def test_held_counts_what_the_newest_consumer_holds() -> None:
    held = play([("start", "a"), *sent("a", 1, 2, 3), ("read", "a", 1), ("read", "a", 2)])
    held.read()
    assert (held.here, held.consumers) == (2, 1)
    held.started("b")
    assert (held.here, held.consumers) == (0, 2)


@pytest.mark.parametrize(
    ("depth", "window", "fix"),
    [
        (17, 1, "give --read-ahead 2 or more"),
        (16_001, 1000, "give --read-ahead 1001 or more"),
        (16 * 65_535 + 1, 1000, "move or purge part of it by filter first"),
    ],
)
def test_a_quorum_queue_too_deep_says_what_to_do(depth: int, window: int, fix: str) -> None:
    text = too_deep("q.dlq", depth, window)
    assert text.startswith(f"q.dlq is a quorum queue of {depth} messages")
    assert text.endswith(fix)
