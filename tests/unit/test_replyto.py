"""Which direct reply-to addresses may be published, per broker version (no broker)."""

from __future__ import annotations

import base64

import pytest

from eventrabbit.replyto import deliverable

PREFIX = "amq.rabbitmq.reply-to."
# What RabbitMQ 3.10 handed out (a NEW_PID_EXT term with an ATOM_UTF8_EXT node name).
REAL = PREFIX + "g1h2AA1yZXBseUA5MjQ4ODg0AAAPZgAAAAFrEGT2.KcBB22N0SwKAR7yABAD+LQ=="
PID = base64.b64decode(REAL[len(PREFIX) :].split(".")[0])
OLD_PID = bytes([131, 103, 115, 4]) + b"a@bc" + bytes(9)  # PID_EXT, SMALL_ATOM_EXT


def _address(term: bytes, key: str = "k") -> str:
    return PREFIX + base64.b64encode(term).decode() + "." + key


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        pytest.param(REAL, True, id="handed-out"),
        pytest.param(_address(OLD_PID), True, id="pid-ext"),
        pytest.param("orders.replies", True, id="plain-queue"),
        pytest.param(PREFIX + "garbage", True, id="no-key-routes-nowhere"),
        pytest.param(PREFIX, True, id="empty"),
        pytest.param(PREFIX + "AAAA.x", False, id="base64-not-a-term"),
        pytest.param(PREFIX + "!!!!.x", False, id="not-base64"),
        pytest.param(PREFIX + "g2VuZGVyQHJhYmJpdA==.x", False, id="term-not-a-pid"),
        pytest.param(_address(PID[:-2]), False, id="pid-truncated"),
        pytest.param(_address(PID + b"\x00"), False, id="pid-with-trailing-bytes"),
        pytest.param(_address(bytes([131, 97, 5])), False, id="small-int-term"),
        pytest.param(_address(bytes([131, 88, 200]) + bytes(20)), False, id="unknown-atom-tag"),
    ],
)
@pytest.mark.parametrize("version", ["3.10.8", "3.13.7", "4.0.5", "4.1.0"])
def test_pid_encoded_versions(address: str, ok: bool, version: str) -> None:
    assert deliverable(address, version) is ok


@pytest.mark.parametrize("version", ["4.2.0", "5.0", "", "unknown", "4"])
def test_newer_or_unknown_versions_get_every_address(version: str) -> None:
    assert deliverable(PREFIX + "AAAA.x", version)
