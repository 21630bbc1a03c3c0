"""The in-memory broker routes through ``CC``/``BCC`` headers, alternate exchanges and
exchange-to-exchange bindings as RabbitMQ 3.10 does: played on both, compared
(:mod:`tests.differential`).

Where RabbitMQ differs from what one might expect, the case says so: a ``CC`` or ``BCC`` that
is a plain string (not an array) is refused with 406, not taken as one routing key.
"""

from __future__ import annotations

import pytest

from tests.differential import Side, compare

pytestmark = pytest.mark.differential


# ------------------------------------------------------------------------------ CC / BCC


async def cc_and_bcc_on_a_direct_exchange(side: Side) -> None:
    await side.exchange("x", "direct")
    for queue in ("a", "b", "c"):
        await side.queue(queue)
        await side.bind(queue, "x", queue)
    # Each queue gets it once, with the key it was published with; BCC is gone, CC stays.
    await side.publish("x", "a", b"both", headers={"CC": ["b", "a"], "BCC": ["c"], "h": 1})
    await side.publish("x", "z", b"bcc only", mandatory=True, headers={"BCC": ["c"]})
    # Elements that are not strings are ignored; so are lowercase names and an empty array.
    await side.publish("x", "z", b"mixed", headers={"CC": ["b", 7, bytearray(b"c")]})
    await side.publish("x", "z", b"lowercase", mandatory=True, headers={"cc": ["b"]})
    await side.publish("x", "z", b"empty", mandatory=True, headers={"CC": []})
    for queue in ("a", "b", "c"):
        await side.drain(queue)


async def cc_that_is_not_an_array(side: Side) -> None:
    # RabbitMQ 3.10 takes only an array: a plain string is refused like any other type.
    await side.exchange("x", "direct")
    await side.queue("a")
    await side.bind("a", "x", "a")
    for headers in (
        {"CC": "a"},
        {"BCC": "a"},
        {"CC": 5},
        {"CC": {"a": "b"}},
        {"CC": None},
        {"CC": ["a"], "BCC": True},
    ):
        await side.publish("x", "a", repr(headers).encode(), headers=headers)
    await side.publish("", side.name("a"), b"default exchange", headers={"CC": "a"})
    await side.publish("nowhere", "a", b"404 before 406", headers={"CC": "a"})
    await side.drain("a")


async def cc_on_the_default_exchange(side: Side) -> None:
    for queue in ("a", "b"):
        await side.queue(queue)
    headers = {"CC": [side.name("b")], "BCC": [side.name("a")]}
    await side.publish("", side.name("a"), b"to a and b", headers=headers)
    await side.publish(
        "", "nowhere", b"bcc to b", mandatory=True, headers={"BCC": [side.name("b")]}
    )
    await side.publish("", "nowhere", b"lost", mandatory=True, headers={"CC": ["nowhere"]})
    for queue in ("a", "b"):
        await side.drain(queue)


async def cc_on_fanout_headers_and_topic(side: Side) -> None:
    await side.exchange("f", "fanout")
    await side.exchange("h", "headers")
    await side.exchange("t", "topic")
    await side.queue("a")
    await side.bind("a", "f")
    await side.bind("a", "h", "", {"k": 1})
    await side.queue("b")
    await side.bind("b", "t", "b.#")
    await side.bind("b", "t", "c.*")
    await side.publish("f", "k", b"fanout", headers={"CC": ["x", "y"]})
    await side.publish("h", "k", b"headers", headers={"CC": ["x"], "k": 1})
    await side.publish("h", "k", b"headers unmatched", mandatory=True, headers={"CC": ["x"]})
    await side.publish("t", "z", b"topic", headers={"CC": ["b.1", "c.2"], "BCC": ["b.3"]})
    await side.publish("t", "z", b"topic unmatched", mandatory=True, headers={"BCC": ["q"]})
    for queue in ("a", "b"):
        await side.drain(queue)


# ------------------------------------------------------------------- alternate exchanges


async def alternate_exchanges(side: Side) -> None:
    await side.exchange("ae2", "fanout")
    await side.exchange("ae", "topic", {"alternate-exchange": "ae2"})
    await side.exchange("x", "direct", {"alternate-exchange": "ae"})
    await side.exchange("m", "direct", {"alternate-exchange": "missing"})
    await side.exchange("c1", "direct", {"alternate-exchange": "c2"})
    await side.exchange("c2", "direct", {"alternate-exchange": "c1"})
    await side.exchange("d", "direct", {"alternate-exchange": ""})
    for queue in ("q", "qa", "qa2", "qc"):
        await side.queue(queue)
    await side.bind("q", "x", "k")
    await side.bind("qa", "ae", "t.*")
    await side.bind("qa2", "ae2")
    await side.bind("qc", "c2", "c")
    await side.publish("x", "k", b"routed", mandatory=True)
    await side.publish("x", "t.1", b"to ae", mandatory=True)
    await side.publish("x", "z", b"through ae to ae2", mandatory=True)
    await side.publish("x", "z", b"cc routes in ae", mandatory=True, headers={"CC": ["t.2"]})
    await side.publish("x", "z", b"bcc routes in x", mandatory=True, headers={"BCC": ["k"]})
    await side.publish("m", "z", b"ae missing", mandatory=True)
    await side.publish("c1", "c", b"cycle reaches c2", mandatory=True)
    await side.publish("c1", "z", b"cycle ends", mandatory=True)
    await side.publish("d", side.name("q"), b"ae is the default exchange", mandatory=True)
    await side.exchange_delete("ae2")
    await side.publish("x", "z", b"ae2 deleted", mandatory=True)
    for queue in ("q", "qa", "qa2", "qc"):
        await side.drain(queue)


async def alternate_exchange_declares(side: Side) -> None:
    await side.exchange("bad", "direct", {"alternate-exchange": 5})
    await side.exchange("binary", "direct", {"alternate-exchange": bytearray(b"ae")})
    await side.exchange("x", "direct", {"alternate-exchange": "ae"})
    await side.exchange("x", "direct", {"alternate-exchange": "ae", "x-other": 1})
    await side.exchange("x", "direct", {"alternate-exchange": "other"})
    await side.exchange("x", "direct")
    await side.exchange("x", "direct", {"alternate-exchange": 5})
    await side.exchange("plain", "direct")
    await side.exchange("plain", "direct", {"alternate-exchange": "ae"})
    await side.exchange("plain", "direct", {"x-other": 1})
    await side.publish("bad", "k", b"bad was not declared")


# ------------------------------------------------------------------- exchange bindings


async def exchange_bindings(side: Side) -> None:
    await side.exchange("src", "topic")
    await side.exchange("mid", "direct")
    await side.exchange("fan", "fanout")
    await side.exchange("h", "headers")
    for queue in ("q1", "q2", "q3"):
        await side.queue(queue)
    await side.exchange_bind("mid", "src", "a.*")
    await side.exchange_bind("mid", "src", "a.*")  # the same binding twice
    await side.exchange_bind("fan", "mid", "a.b")
    await side.exchange_bind("src", "fan")  # a cycle: src -> mid -> fan -> src
    await side.exchange_bind("h", "src", "#")
    await side.bind("q1", "mid", "a.b")
    await side.bind("q2", "fan")
    await side.bind("q3", "src", "a.#")
    await side.bind("q3", "h", "", {"k": 1})
    await side.publish("src", "a.b", b"every path", mandatory=True, headers={"k": 1})
    await side.publish("mid", "a.b", b"round the cycle", mandatory=True)
    await side.publish("fan", "zz", b"from fan", mandatory=True)
    await side.publish("src", "x", b"nowhere", mandatory=True)
    await side.publish("src", "x", b"cc", mandatory=True, headers={"CC": ["a.c"]})
    await side.exchange_unbind("fan", "mid", "a.b")
    await side.exchange_unbind("fan", "mid", "a.b")  # gone already: fine
    await side.publish("mid", "a.b", b"unbound", mandatory=True)
    await side.exchange_delete("fan")
    await side.publish("src", "a.b", b"fan deleted", mandatory=True)
    await side.exchange_delete("mid")
    await side.publish("src", "a.c", b"mid deleted", mandatory=True)
    for queue in ("q1", "q2", "q3"):
        await side.drain(queue)


async def exchange_bindings_and_alternates(side: Side) -> None:
    # A matching exchange binding counts as routed, even where the exchange drops it.
    await side.exchange("ae", "fanout")
    await side.exchange("x", "direct", {"alternate-exchange": "ae"})
    await side.exchange("y", "direct", {"alternate-exchange": "ae"})
    await side.exchange("z", "direct")
    await side.queue("qa")
    await side.bind("qa", "ae")
    await side.queue("qy")
    await side.bind("qy", "y", "k")
    await side.exchange_bind("y", "x", "k")
    await side.exchange_bind("y", "x", "l")
    await side.exchange_bind("z", "x", "j")
    await side.exchange_bind("x", "x", "self")
    await side.publish("x", "k", b"k", mandatory=True)
    await side.publish("x", "l", b"y's alternate", mandatory=True)
    await side.publish("x", "j", b"dropped in z", mandatory=True)
    await side.publish("x", "self", b"bound to itself", mandatory=True)
    await side.publish("x", "other", b"x's alternate", mandatory=True)
    for queue in ("qa", "qy"):
        await side.drain(queue)


async def exchange_binding_refusals(side: Side) -> None:
    await side.exchange("x", "direct")
    await side.exchange("h", "headers")
    await side.exchange_bind("nope", "x", "k")
    await side.exchange_bind("x", "nope", "k")
    await side.exchange_bind("nope1", "nope2", "k")
    await side.exchange_bind("", "x", "k")
    await side.exchange_bind("x", "", "k")
    await side.exchange_bind("x", "h", "", {"x-match": "bad"})
    await side.exchange_bind("h", "x", "", {"x-match": "bad"})  # only a headers source checks
    await side.exchange_unbind("x", "nope", "k")
    await side.exchange_unbind("nope", "x", "k")
    await side.exchange_unbind("x", "", "k")
    await side.exchange_bind("x", "amq.direct", "diff-topology")
    await side.exchange_unbind("x", "amq.direct", "diff-topology")


async def internal_exchanges(side: Side) -> None:
    channel = await side.channel()
    await channel.exchange_declare(side.name("i"), exchange_type="fanout", internal=True)
    side.exchanges.append(side.name("i"))
    await side.exchange("i", "fanout")  # not internal: inequivalent
    await side.exchange("x", "direct")
    await side.queue("q")
    await side.bind("q", "i")
    await side.exchange_bind("i", "x", "k")
    await side.publish("i", "k", b"refused", headers={"CC": "checked after"})
    await side.publish("x", "k", b"through the internal exchange", mandatory=True)
    await side.drain("q")


async def dead_letters_through_alternate_and_bound_exchanges(side: Side) -> None:
    await side.exchange("ae", "fanout")
    await side.exchange("dlx", "direct", {"alternate-exchange": "ae"})
    await side.exchange("on", "fanout")
    await side.exchange_bind("on", "dlx", "bound")
    await side.queue("dies", {"x-dead-letter-exchange": "dlx", "x-message-ttl": 0})
    await side.queue(
        "dies-bound",
        {
            "x-dead-letter-exchange": "dlx",
            "x-dead-letter-routing-key": "bound",
            "x-message-ttl": 0,
        },
    )
    await side.queue("via-ae")
    await side.bind("via-ae", "ae")
    await side.queue("via-binding")
    await side.bind("via-binding", "on")
    await side.publish("", side.name("dies"), b"unroutable in dlx")
    await side.publish("", side.name("dies-bound"), b"bound")
    await side.drain("via-ae", expect=1)
    await side.drain("via-binding", expect=1)


async def dead_letters_keep_their_cc_and_bcc_keys(side: Side) -> None:
    """A dead letter is routed with its routing key and its CC and BCC keys, BCC's although
    the queue got it without that header; a dead-letter routing key replaces them all."""
    await side.exchange("dlx", "direct")
    for key in ("k", "cc", "bcc", "fixed"):
        await side.queue(f"got-{key}")
        await side.bind(f"got-{key}", "dlx", key)
    await side.queue("dies", {"x-dead-letter-exchange": "dlx", "x-message-ttl": 0})
    await side.queue(
        "dies-fixed",
        {
            "x-dead-letter-exchange": "dlx",
            "x-dead-letter-routing-key": "fixed",
            "x-message-ttl": 0,
        },
    )
    await side.exchange("in", "direct")
    await side.bind("dies", "in", "k")
    await side.bind("dies-fixed", "in", "other")
    await side.publish("in", "k", b"all keys", headers={"CC": ["cc"], "BCC": ["bcc"]})
    await side.publish("in", "other", b"one key", headers={"CC": ["k"], "BCC": ["bcc"]})
    for key, expect in (("k", 1), ("cc", 1), ("bcc", 1), ("fixed", 1)):
        await side.drain(f"got-{key}", expect=expect)


CASES = [
    dead_letters_keep_their_cc_and_bcc_keys,
    cc_and_bcc_on_a_direct_exchange,
    cc_that_is_not_an_array,
    cc_on_the_default_exchange,
    cc_on_fanout_headers_and_topic,
    alternate_exchanges,
    alternate_exchange_declares,
    exchange_bindings,
    exchange_bindings_and_alternates,
    exchange_binding_refusals,
    internal_exchanges,
    dead_letters_through_alternate_and_bound_exchanges,
]


@pytest.mark.parametrize("case", CASES)
async def test_case(case) -> None:  # type: ignore[no-untyped-def]
    rabbit, memory = await compare(case)
    assert memory == rabbit
