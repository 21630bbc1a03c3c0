"""What a command prints: text for people by default, one JSON document with ``--json``.

Results go to stdout; progress and errors to stderr, so ``--json`` output stays parseable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def result(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print a command's result: ``data`` as JSON with ``--json``, else ``text``."""
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def progress(text: str) -> None:
    """A progress line on stderr (never on stdout: it would break ``--json``)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
