"""A projection ``eventrabbit replay`` runs: its handler appends each event's ``n`` to the file
``$REPLAY_OUT``; the stream and its exchange are named by ``$REPLAY_STREAM``."""

from __future__ import annotations

import os

from eventrabbit import ExchangeType, StreamChannel, build_event_dependencies

URL = os.environ.get("EVENTRABBIT_URL", "amqp://guest:guest@localhost:5672/")
NAME = os.environ.get("REPLAY_STREAM", "test.replay.unset")
OUT = os.environ.get("REPLAY_OUT", os.devnull)

events, handle = build_event_dependencies(URL)
STREAM = StreamChannel(URL, NAME, f"{NAME}.ex", ExchangeType.FANOUT)


def append(n: int) -> None:
    """One line per event handled (a small file: blocking the loop for it is fine here)."""
    with open(OUT, "a") as out:
        out.write(f"{n}\n")


@events.consumer("COUNTED")
async def counted(n: int) -> None:
    append(n)
