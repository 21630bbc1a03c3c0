"""Logging for ``eventrabbit run``: one handler on stderr, text or JSON lines, standard library
only.

Theory of operation
-------------------
The root logger gets one stderr handler at ``--log-level``, so the library's loggers (under
``eventrabbit``), aiormq's and the service's own all come out the same way. The library logs
with ``extra`` fields (``queue``, ``action``, ``message_id``, ``retry_count``, ``outcome``,
...): the JSON format writes every such field as a key of its own, the text format leaves them
out (its messages already name the queue and message). The command's own announcements — ready,
stopping, a worker died — go through :data:`log` (``eventrabbit.cli.run``), kept at INFO or
below so that ``--log-level error`` still shows them.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

#: The logger of the command's own lines (ready, stopping, workers).
log = logging.getLogger("eventrabbit.cli.run")

# The attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``pid``, ``worker`` (under ``--workers``), every ``extra`` field, and ``exception`` with the
    traceback when there is one."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if self.worker is not None:
            doc["worker"] = self.worker
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # default=str: an ``extra`` value JSON has no type for still gets logged, as text.
        return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def text_formatter(worker: int | None = None) -> logging.Formatter:
    """``2026-12-05 10:00:00,123 INFO [worker 2] eventrabbit.handle: consuming queue 'q'``."""
    where = f"[worker {worker}] " if worker is not None else ""
    return logging.Formatter(f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s")


def configure(level: str, form: str, worker: int | None = None) -> None:
    """Send every log record at ``level`` or above to stderr in ``form`` (``text``/``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker) if form == "json" else text_formatter(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    number = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(number)
    # The announcements are what an operator waits for: never filtered out.
    log.setLevel(min(number, logging.INFO))
