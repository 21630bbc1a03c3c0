"""The command's entry point without a broker: exit codes of library errors (a table), URLs
censored in argparse's own errors, ``--url``/``--json`` accepted before or after the command."""

from __future__ import annotations

import pytest

from eventrabbit import (
    AccessRefused,
    BrokerUnavailable,
    ConfigurationError,
    PublishTimeout,
    RemoteError,
    TopologyError,
    UnroutableError,
)
from eventrabbit.cli.exits import CommandError, Exit, code_of
from eventrabbit.cli.main import DEFAULT_URL, censor_text, main, parser


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CommandError("x", Exit.REMOTE_FAILED), Exit.REMOTE_FAILED),
        (BrokerUnavailable("down", url="amqp://h/"), Exit.UNREACHABLE),
        (AccessRefused("login", url="amqp://h/"), Exit.UNREACHABLE),
        (PublishTimeout("slow", exchange="", routing_key="q"), Exit.UNREACHABLE),
        (TimeoutError(), Exit.UNREACHABLE),
        (ConnectionResetError(), Exit.UNREACHABLE),
        (ConfigurationError("bad"), Exit.USAGE),
        (TopologyError("clash"), Exit.USAGE),
        (UnroutableError("nobody", exchange="", routing_key="q"), Exit.REMOTE_FAILED),
        (RemoteError("ValueError", "boom"), Exit.REMOTE_FAILED),
        (KeyError("a bug"), None),
    ],
)
def test_code_of(error: BaseException, code: Exit | None) -> None:
    assert code_of(error) == code


@pytest.mark.parametrize(
    ("text", "censored"),
    [
        ("invalid choice: 'amqp://u:secret@h/'", "invalid choice: 'amqp://u:******@h/'"),
        (
            "amqps://u:p%40ss@h:5671/v and amqp://x:y@z/",
            "amqps://u:******@h:5671/v and amqp://x:******@z/",
        ),
        ("amqp://guest@localhost/ has no password", "amqp://guest@localhost/ has no password"),
        ("no url here", "no url here"),
    ],
)
def test_censor_text(text: str, censored: str) -> None:
    assert censor_text(text) == censored


def test_a_url_in_the_wrong_place_is_censored_in_the_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["amqp://user:hunter2@broker/", "publish"])
    assert info.value.code == Exit.USAGE
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "amqp://user:******@broker/" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "amqp://a/", "--json", "check"],
        ["check", "--url", "amqp://a/", "--json"],
    ],
)
def test_common_options_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.url, args.json) == ("amqp://a/", True)


def test_common_options_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTRABBIT_URL", raising=False)
    args = parser().parse_args(["check"])
    assert (args.url, args.json) == (DEFAULT_URL, False)
