"""The instruction benchmark's parsing and arithmetic, from hand-written callgrind output.

No valgrind, no broker: ``benchmarks.instructions`` keeps these steps pure for that.
"""

from __future__ import annotations

import pytest

from benchmarks.instructions import Row, main, markdown, parse_collected, per_message, summarise

CALLGRIND_STDERR = """\
==30058== Callgrind, a call-graph generating cache profiler
==30058== Copyright (C) 2002-2017, and GNU GPL'd, by Josef Weidendorfer et al.
==30058== Using Valgrind-3.19.0 and LibVEX; rerun with -h for copyright info
==30058== Command: python -m benchmarks.profile_consume --client raw --n 1000
==30058==
==30058== For interactive control, run 'callgrind_control -h'.
==30058==
==30058== Events    : Ir
==30058== Collected : 1234567890
==30058==
==30058== I   refs:      1,234,567,890
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(CALLGRIND_STDERR, 1_234_567_890, id="callgrind summary"),
        pytest.param("==7== Collected : 126559\n", 126_559, id="line alone"),
        pytest.param("==7==  Collected:126559  \n", 126_559, id="spacing varies"),
        pytest.param(
            "raw: 1,234 msgs/s\nCollected : 99\n==7== Collected : 5\n",
            5,
            id="program's own text without valgrind's prefix ignored",
        ),
    ],
)
def test_parse_collected(text: str, expected: int) -> None:
    assert parse_collected(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(CALLGRIND_STDERR.replace("Collected : 1234567890\n", ""), id="no count"),
        pytest.param("==7== Collected : \n", id="no number"),
        pytest.param("==7== Collected : 5\n==8== Collected : 6\n", id="two processes traced"),
    ],
)
def test_parse_collected_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="Collected"):
        parse_collected(text)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param((1000, 400_000_000), (4000, 1_300_000_000), 300_000.0, id="slope"),
        pytest.param((4000, 1_300_000_000), (1000, 400_000_000), 300_000.0, id="either order"),
        pytest.param((0, 50), (2, 55), 2.5, id="fractional"),
        pytest.param((10, 700), (20, 700), 0.0, id="no cost per message"),
    ],
)
def test_per_message(first: tuple[int, int], second: tuple[int, int], expected: float) -> None:
    assert per_message(first, second) == expected


@pytest.mark.parametrize(
    ("first", "second", "match"),
    [
        pytest.param((1000, 5), (1000, 9), "different", id="same size"),
        pytest.param((-1, 5), (1000, 9), "non-negative", id="negative size"),
        pytest.param((1000, 9), (4000, 5), "fewer instructions", id="larger run counted less"),
    ],
)
def test_per_message_refuses(first: tuple[int, int], second: tuple[int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        per_message(first, second)


@pytest.mark.parametrize(
    ("per_client", "expected"),
    [
        pytest.param(
            {"raw": [200.0], "eventrabbit": [300.0]},
            [
                Row("raw", 200.0, 200.0, 200.0, 1, None),
                Row("eventrabbit", 300.0, 300.0, 300.0, 1, 1.5),
            ],
            id="one repeat",
        ),
        pytest.param(
            {"eventrabbit": [90.0, 110.0, 100.0], "raw": [210.0, 200.0, 190.0]},
            [
                Row("raw", 200.0, 190.0, 210.0, 3, None),
                Row("eventrabbit", 100.0, 90.0, 110.0, 3, 0.5),
            ],
            id="medians, reference first whatever the order",
        ),
        pytest.param(
            {"raw": [100.0, 300.0], "a": [50.0], "b": [400.0, 400.0]},
            [
                Row("raw", 200.0, 100.0, 300.0, 2, None),
                Row("a", 50.0, 50.0, 50.0, 1, 0.25),
                Row("b", 400.0, 400.0, 400.0, 2, 2.0),
            ],
            id="even count: median between the two, others keep their order",
        ),
    ],
)
def test_summarise(per_client: dict[str, list[float]], expected: list[Row]) -> None:
    assert summarise(per_client) == expected


@pytest.mark.parametrize(
    "per_client",
    [
        pytest.param({"eventrabbit": [1.0]}, id="no reference"),
        pytest.param({"raw": [], "eventrabbit": [1.0]}, id="reference without figures"),
        pytest.param({"raw": [1.0], "eventrabbit": []}, id="client without figures"),
    ],
)
def test_summarise_refuses(per_client: dict[str, list[float]]) -> None:
    with pytest.raises(ValueError, match="no figures"):
        summarise(per_client)


@pytest.mark.parametrize(
    ("rows", "expected_lines"),
    [
        pytest.param(
            [Row("raw", 289_700.4, 289_700.4, 289_700.4, 1, None)],
            ["| raw | 289,700 | \N{EM DASH} |"],
            id="one repeat: no range",
        ),
        pytest.param(
            [
                Row("raw", 250_000.0, 249_000.0, 251_500.0, 3, None),
                Row("eventrabbit", 289_700.0, 289_000.0, 290_100.0, 3, 1.1588),
            ],
            [
                "| raw | 250,000 (249,000\N{EN DASH}251,500) | \N{EM DASH} |",
                "| eventrabbit | 289,700 (289,000\N{EN DASH}290,100) | 1.16x |",
            ],
            id="repeats: range, ratio",
        ),
    ],
)
def test_markdown(rows: list[Row], expected_lines: list[str]) -> None:
    lines = markdown(rows).splitlines()
    assert lines[:2] == [
        "| client | instructions per consumed message | ratio to raw |",
        "|---|---:|---:|",
    ]
    assert lines[2:] == expected_lines


def test_missing_valgrind_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("benchmarks.instructions.shutil.which", lambda name: None)
    assert main(["--clients", "eventrabbit"]) == 2
    assert "apt-get install valgrind" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--clients", "nobody"], id="unknown client"),
        pytest.param(["--sizes", "1000"], id="one size"),
        pytest.param(["--sizes", "1000,1000"], id="same sizes"),
        pytest.param(["--sizes", "0,1000"], id="zero size"),
        pytest.param(["--sizes", "1000,many"], id="not a number"),
        pytest.param(["--repeat", "0"], id="no repeat"),
    ],
)
def test_bad_options_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
