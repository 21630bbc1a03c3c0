"""eventrabbit.decodable and eventrabbit.standins, with pamqp itself as the judge: what
classify() passes, pamqp decodes (and, when CLEAN, re-encodes byte for byte); what pamqp
refuses gets a stand-in pamqp decodes, with a reason naming each problem.
"""

from __future__ import annotations

import random
import struct

import pytest
from pamqp import commands as spec
from pamqp.header import ContentHeader

from eventrabbit.decodable import CLEAN, KEEP, SUSPECT, classify
from eventrabbit.fields import MAX_DEPTH
from eventrabbit.properties import parse_properties
from eventrabbit.standins import EMPTY_PROPERTIES, deliver_stand_in, header_stand_in, refusal
from tests.unit.test_fields import entry, long
from tests.unit.test_properties import HAND_MADE, PAMQP_MADE, shortstr

PREFIX = b"\x00\x3c\x00\x00" + struct.pack(">Q", 10)  # class 60, weight 0, body size 10


def pamqp_reading(raw: bytes) -> spec.Basic.Properties | None:
    header = ContentHeader()
    try:
        header.unmarshal(PREFIX + raw)
    except (ValueError, OverflowError, OSError):
        return None
    return header.properties


def verdict(raw: bytes) -> int:
    """classify() on ``raw`` as it lies in a reader's buffer, among other bytes."""
    buf = bytearray(b"\x02\x00\x01" + b"\xee" * 16 + raw + b"\xce" + b"\x03\xff\xff\xff")
    return classify(buf, 19, 19 + len(raw))


def props(flags: int, *parts: bytes) -> bytes:
    return struct.pack(">H", flags) + b"".join(parts)


CASES = [
    ("bench-like", spec.Basic.Properties(content_type="a/b", message_id="m").marshal(), CLEAN),
    ("pamqp made", PAMQP_MADE[2].marshal(), KEEP),
    ("seconds last", props(0x8040, shortstr(b"a"), struct.pack(">Q", 1)), CLEAN),
    ("ms timestamp", props(0x0040, struct.pack(">Q", 2**40)), KEEP),
    ("timestamp not last", props(0x0050, struct.pack(">Q", 7), shortstr(b"u")), CLEAN),
    ("micro timestamp", props(0x0040, struct.pack(">Q", 1_700_000_000_000_000)), SUSPECT),
    ("max timestamp", props(0x0050, struct.pack(">Q", 2**64 - 1), shortstr(b"u")), SUSPECT),
    ("empty string", props(0x8000, shortstr(b"")), KEEP),
    ("priority 0", props(0x0800, b"\x00"), CLEAN),
    ("utf-8 text", props(0x0080, shortstr("ü".encode())), CLEAN),
    ("latin-1 text", props(0x0080, shortstr(b"\xfc")), SUSPECT),
    ("long string", props(0x0080, shortstr(b"m" * 200)), CLEAN),
    ("utf-8 key", props(0x2000, long(entry("ü".encode(), "V", b""))), KEEP),
    ("latin-1 key", props(0x2000, long(entry(b"\xfc", "V", b""))), SUSPECT),
    ("T header micro", props(0x2000, long(entry(b"t", "T", struct.pack(">Q", 2**60)))), SUSPECT),
    ("S not utf-8", props(0x2000, long(entry(b"s", "S", long(b"\xff")))), KEEP),
    ("unknown tag", props(0x2000, long(entry(b"k", "Z", b""))), SUSPECT),
    ("stray flag bit", props(0x0002), SUSPECT),
    # Without headers the fast path trusts the shape RabbitMQ checked at publish (pamqp, which
    # slices leniently, reads these anyway); a walk finds what is wrong.
    ("cut short, trusted", props(0x8000, b"\x09ab"), CLEAN),
    ("left over, trusted", props(0x0800, b"\x01\x02"), CLEAN),
    ("cut short, walked", props(0x8040, b"\x09ab" + struct.pack(">Q", 2**40)), SUSPECT),
    ("left over, walked", props(0x2000, long(b""), b"\x01"), SUSPECT),
    *[(f"hand made {i}", raw, None) for i, raw in enumerate(HAND_MADE)],
]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_classify_against_pamqp(name: str, raw: bytes, expected: int | None) -> None:
    found = verdict(raw)
    if expected is not None:
        assert found == expected
    assert_sound(raw, found)


def assert_sound(raw: bytes, found: int) -> None:
    reading = pamqp_reading(raw)
    if found in (CLEAN, KEEP):
        assert reading is not None, "passed what pamqp refuses"
    if found == CLEAN and parses(raw):
        assert reading is not None
        assert reading.marshal() == raw, "CLEAN, but pamqp would not re-encode it as it was"


def parses(raw: bytes) -> bool:
    try:
        parse_properties(raw)
    except ValueError:
        return False
    return True


def random_list(rng: random.Random) -> bytes:
    """A property list with a few flaws pamqp may refuse, at random places and depths."""

    def text() -> bytes:
        alphabet = [b"a"] * 40 + [b"\x00", "ü".encode(), b"\xff", b"\xc3"]
        return b"".join(rng.choice(alphabet) for _ in range(rng.randrange(4)))

    def stamp() -> bytes:
        return struct.pack(">Q", rng.choice([1, 2**32 - 1] * 20 + [2**40, 2**50, 2**64 - 1]))

    def value(depth: int) -> bytes:
        tag = rng.choice("tbBsuIilLfdDSxTVAF" if depth < 3 else "tbSTV")
        if tag in "AF":
            items = (
                (shortstr(text()) if tag == "F" else b"") + value(depth + 1)
                for _ in range(rng.randrange(3))
            )
            return tag.encode() + long(b"".join(items))
        if tag in "Sx":
            return tag.encode() + long(text())
        if tag == "T":
            return b"T" + stamp()
        size = {"t": 1, "b": 1, "B": 1, "s": 2, "u": 2, "I": 4, "i": 4, "f": 4, "D": 5, "V": 0}
        return tag.encode() + bytes(rng.randrange(256) for _ in range(size.get(tag, 8)))

    flags = rng.randrange(0, 0x10000) & 0xFFFC
    if rng.random() < 0.5:
        flags &= ~0x2000  # as often without headers as with
    parts = []
    for name, bit in [(n, 0x8000 >> i) for i, n in enumerate("SSHOOSSSSTSSSS")]:
        if not flags & bit:
            continue
        if name == "S":
            parts.append(shortstr(text()))
        elif name == "O":
            parts.append(bytes((rng.randrange(3),)))
        elif name == "T":
            parts.append(stamp())
        else:
            table = b"".join(shortstr(text()) + value(0) for _ in range(rng.randrange(4)))
            parts.append(long(table))
    return props(flags, *parts)


def test_classify_and_stand_ins_on_random_lists() -> None:
    rng = random.Random(20240601)
    seen = {CLEAN: 0, KEEP: 0, SUSPECT: 0}
    for _ in range(3000):
        raw = random_list(rng)
        found = verdict(raw)
        seen[found] += 1
        assert_sound(raw, found)
        stand_in = header_stand_in(PREFIX + raw)
        if pamqp_reading(raw) is None:
            assert stand_in is not None
            assert refusal(stand_in.payload) is None
            assert stand_in.properties == raw  # these all parse: the original is stashed
        else:
            assert stand_in is None
    assert min(seen.values()) > 100, seen


def test_a_stand_in_says_what_it_changed() -> None:
    raw = props(
        0x2000 | 0x0080 | 0x0040,
        long(
            entry(b"caf\xe9", "S", long(b"kept"))
            + entry(b"when", "T", struct.pack(">Q", 2**64 - 1))
            + entry(b"n", "A", long(b"F" + long(entry(b"t", "T", struct.pack(">Q", 2**63)))))
            + entry(b"fine", "d", struct.pack(">d", 0.1))
        ),
        shortstr(b"id\xff"),
        struct.pack(">Q", 1_700_000_000_000_000),
    )
    stand_in = header_stand_in(PREFIX + raw)
    assert stand_in is not None
    assert stand_in.properties == raw
    assert stand_in.problem == (
        "undecodable properties: property message_id 'id\\xff' is not UTF-8; "
        "property timestamp 1700000000000000 is out of range; "
        "header 'caf\\xe9': the key is not UTF-8; "
        "header 'when': timestamp 18446744073709551615 is out of range; "
        "header 'n[0].t': timestamp 9223372036854775808 is out of range"
    )
    reading = pamqp_reading(stand_in.payload[12:])
    assert reading is not None
    assert reading.message_id == "id\\xff"
    assert reading.timestamp is None
    assert reading.headers == {"caf\\xe9": "kept", "n": [{}], "fine": 0.1}


def test_a_stand_in_lists_at_most_five_problems() -> None:
    table = b"".join(entry(bytes((0xE0 + i,)), "V", b"") for i in range(8))
    stand_in = header_stand_in(PREFIX + props(0x2000, long(table)))
    assert stand_in is not None
    assert stand_in.problem.count("the key is not UTF-8") == 5
    assert stand_in.problem.endswith("; and 3 more")


def test_too_deep_nesting_is_left_out() -> None:
    value = b"V"
    for _ in range(MAX_DEPTH + 2):
        value = b"A" + long(value)
    raw = props(0x2080, long(entry(b"deep", "A", value[1:])), shortstr(b"\xff"))
    assert verdict(raw) == SUSPECT
    stand_in = header_stand_in(PREFIX + raw)
    assert stand_in is not None
    assert "nested deeper than 64 levels" in stand_in.problem
    assert refusal(stand_in.payload) is None


def test_a_list_that_cannot_be_parsed_gets_empty_properties() -> None:
    raw = props(0x2000, long(entry(b"\xff", "Z", b"")))  # an unknown type after a bad key
    stand_in = header_stand_in(PREFIX + raw)
    assert stand_in is not None
    assert stand_in.payload == PREFIX + EMPTY_PROPERTIES
    assert stand_in.properties == EMPTY_PROPERTIES
    assert "malformed properties (unknown field type 'Z'" in stand_in.problem
    assert parse_properties(stand_in.properties).encode() == EMPTY_PROPERTIES


def deliver(exchange: bytes, routing_key: bytes) -> tuple[bytes, int]:
    payload = (
        b"\x00\x3c\x00\x3c"
        + shortstr(b"ctag")
        + struct.pack(">QB", 7, 0)
        + shortstr(exchange)
        + shortstr(routing_key)
    )
    return payload, 4 + 5 + 9


def test_deliver_names_that_are_not_utf8_are_escaped() -> None:
    payload, names_at = deliver(b"ex", b"key\xff")
    mended = deliver_stand_in(payload, names_at)
    assert mended is not None
    assert mended == (deliver(b"ex", b"key\\xff")[0], "routing key 'key\\xff' is not UTF-8")
    assert deliver_stand_in(*deliver("é".encode(), b"k")) is None
