"""The wire format's edges: compressed bodies in, strict JSON out, reply bodies both ways."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zlib
from typing import Any

import pytest

from eventrabbit import envelope
from eventrabbit.errors import InvalidMessage, RemoteError, RPCError

BODY = b'{"action":"A","data":{"n":1}}'
LIMIT = 1000


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        pytest.param("gzip", gzip.compress(BODY), id="gzip"),
        pytest.param("GZIP ", gzip.compress(BODY), id="gzip-case-and-space"),
        pytest.param("x-gzip", gzip.compress(BODY), id="x-gzip"),
        pytest.param("deflate", zlib.compress(BODY), id="deflate"),
        pytest.param("bzip2", bz2.compress(BODY), id="bzip2"),
        pytest.param("xz", lzma.compress(BODY), id="xz"),
        pytest.param("identity", BODY, id="identity"),
        pytest.param("utf-8", BODY, id="charset-utf-8"),
        pytest.param("UTF8", BODY, id="charset-utf8"),
    ],
)
def test_decode_content_undoes_what_the_standard_library_can(encoding: str, body: bytes) -> None:
    assert envelope.decode_content(body, encoding, LIMIT) == BODY


@pytest.mark.parametrize(
    ("encoding", "body", "reason"),
    [
        pytest.param("br", BODY, "content_encoding 'br' is not supported", id="brotli"),
        pytest.param("zstd", BODY, "content_encoding 'zstd' is not supported", id="zstd"),
        pytest.param("latin-1", BODY, "content_encoding 'latin-1' is not supported", id="charset"),
        pytest.param("gzip", BODY, "body is not valid gzip", id="not-gzip"),
        pytest.param("bzip2", b"BZh9garbage", "body is not valid bzip2", id="not-bzip2"),
        pytest.param("xz", b"\xfd7zXZgarbage", "body is not valid xz", id="not-xz"),
        pytest.param(
            "gzip",
            gzip.compress(b"x" * (LIMIT + 1)),
            f"gzip body decodes to more than max_body_size ({LIMIT})",
            id="bomb-gzip",
        ),
        pytest.param(
            "xz",
            lzma.compress(b"x" * 10_000_000),
            f"xz body decodes to more than max_body_size ({LIMIT})",
            id="bomb-xz",
        ),
    ],
)
def test_decode_content_refuses_as_bad_input(encoding: str, body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        envelope.decode_content(body, encoding, LIMIT)
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param(float("nan"), "data", id="nan"),
        pytest.param(float("inf"), "data", id="inf"),
        pytest.param({"a": [1, float("-inf")]}, "data['a'][1]", id="nested"),
        pytest.param([{"x": None}, {"y": float("nan")}], "data[1]['y']", id="beside-a-null"),
    ],
)
def test_non_finite_floats_are_refused_not_written_as_null(value: Any, where: str) -> None:
    with pytest.raises(TypeError, match=re.escape(where)):
        envelope.encode("A", value)
    with pytest.raises(TypeError, match="NaN or an infinity"):
        envelope.encode_reply(value)


@pytest.mark.parametrize(
    "value",
    [None, {"x": None}, [None, 1.5], 0.0, -1e300],
    ids=["null", "nested-null", "list", "zero", "huge"],
)
def test_finite_values_and_real_nulls_are_written(value: Any) -> None:
    assert envelope.decode_reply(envelope.encode_reply(value)) == value


def test_reply_bodies_both_ways() -> None:
    assert envelope.encode_reply({"a": 1}) == b'{"data":{"a":1}}'
    body = envelope.encode_error_reply({"type": "KeyError", "message": "'sku'"})
    with pytest.raises(RemoteError) as info:
        envelope.decode_reply(body)
    assert (info.value.type, info.value.message) == ("KeyError", "'sku'")


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"neither": 1}', b'{"error": "flat"}', b"null"]
)
def test_unreadable_replies_are_rpc_errors(body: bytes) -> None:
    with pytest.raises(RPCError, match="unreadable reply"):
        envelope.decode_reply(body)
