"""Every command that talks to a broker, without one: exit 3, and the password never shown —
not when nothing answers, not when the broker refuses the login."""

from __future__ import annotations

import pytest

from tests.cli.conftest import CLI, command_env
from tests.cli.test_publish import UNREACHABLE_URL, WRONG_PASSWORD_URL

COMMANDS = {
    "publish": ["publish", "any", "ping"],
    "call": ["call", "add", "--key", "any"],
    "check": ["check"],
    "dlq": ["dlq", "stats", "any"],
}


@pytest.mark.real_broker
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize(
    ("url", "secret"),
    [(UNREACHABLE_URL, "pw-unreachable"), (WRONG_PASSWORD_URL, "pw-refused")],
    ids=["unreachable", "wrong-password"],
)
async def test_no_broker_exits_3_without_showing_the_password(
    cli: type[CLI], command: list[str], url: str, secret: str
) -> None:
    ran = await cli.run(*command, env=command_env(url))
    assert ran.code == 3, ran.stderr
    assert "******" in ran.stderr
    assert secret not in ran.stdout + ran.stderr
