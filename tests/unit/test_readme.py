"""README.rst stays true to the code it shows."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _indented_block_after(text: str, heading: str) -> str:
    start = text.index(".. code-block:: python", text.index(heading))
    lines = text[start:].split("\n")[2:]
    block: list[str] = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip("\n")


def test_memory_broker_example_in_readme_is_the_example_file() -> None:
    readme = (ROOT / "README.rst").read_text()
    example = (ROOT / "examples" / "test_with_memory_broker.py").read_text()
    assert _indented_block_after(readme, "Testing without RabbitMQ") == example.strip("\n")


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    readme = (ROOT / "README.rst").read_text()
    commands = re.findall(r"^\.\. (demo|test)-command:\n\n::\n\n    \$ (.+)$", readme, re.M)
    assert [name for name, _ in commands] == ["demo", "test"]
    assert all(cmd.startswith("python3 -m venv .venv && ") for _, cmd in commands)
    assert readme.index(".. test-command:") < readme.index("What it is")


def test_readme_is_valid_restructuredtext() -> None:
    import docutils.core
    import docutils.utils

    docutils.core.publish_doctree(
        (ROOT / "README.rst").read_text(),
        settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL},
    )
