"""Health checks and metrics for a service, over plain HTTP: ``/livez``, ``/healthz``, ``/metrics``.

``examples/service.py`` serves them; copy this file into a service of your own. Only the
standard library: a small HTTP/1.1 responder on ``asyncio.start_server``, in the service's
own event loop.

- ``GET /livez``: 200 ``ok`` whenever it answers. It runs on the service's event loop, so an
  answer shows the process is alive and its loop is not stuck. It does not look at the
  broker: a service waiting for its broker is alive, and a restart would not bring the
  broker back.
- ``GET /healthz``: readiness. 200 when every queue of the handle is consuming, else 503 —
  while starting, while a lost connection is being re-established, and once the service is
  stopping. Either way the body is JSON: ``{"ready": ..., "stopping": ..., "queues": [...]}``,
  one entry per ``handle.status()`` item.
- ``GET /metrics``: the Prometheus text format, when the service gives a ``metrics`` function
  (it has ``prometheus_client``); without one, 404 with a line saying how to get them.

Each request is answered and its connection closed (``Connection: close``): probes and
scrapers open one connection per request anyway. ``HEAD`` is answered like ``GET``, without
the body; other methods get 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from eventrabbit import ConsumerStatus

log = logging.getLogger(__name__)

#: The environment variables of the address to listen on, and their defaults.
HOST_ENV, DEFAULT_HOST = "EVENTRABBIT_HEALTH_HOST", "127.0.0.1"
PORT_ENV, DEFAULT_PORT = "EVENTRABBIT_HEALTH_PORT", 8080
#: A request's head (request line and headers) must arrive within this many seconds...
READ_TIMEOUT = 5.0
#: ...and be at most this many bytes: probes send a few short headers.
MAX_HEAD = 8192
#: What ``/metrics`` says without a ``metrics`` function.
NO_METRICS = b"no metrics: install prometheus_client (pip install 'eventrabbit[prometheus]')\n"

TEXT = "text/plain; charset=utf-8"
#: A response: status, content type, body.
Response = tuple[HTTPStatus, str, bytes]
#: Returns the metrics' content type and body.
Metrics = Callable[[], tuple[str, bytes]]


def address(environ: Mapping[str, str]) -> tuple[str, int]:
    """The host and port to listen on, from the environment; port 0 picks a free one.

    :raises ValueError: the port is not a number from 0 to 65535.
    """
    host = environ.get(HOST_ENV, DEFAULT_HOST)
    text = environ.get(PORT_ENV, str(DEFAULT_PORT))
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"{PORT_ENV} must be a port number (0 to 65535), not {text!r}")
    return host, port


class HealthServer:
    """Answers ``/livez``, ``/healthz`` and ``/metrics`` for one handle.

    :param status: the handle's ``status`` method.
    :param metrics: the Prometheus exposition, or ``None`` when there are no metrics.
    """

    def __init__(
        self, status: Callable[[], Sequence[ConsumerStatus]], metrics: Metrics | None = None
    ) -> None:
        self.status = status
        self.metrics = metrics
        #: Set when the service starts to stop: from then on it is not ready.
        self.stopping = False
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host``:``port``; return the address bound (the port 0 chose).

        :raises OSError: the address is in use, or not this machine's.
        """
        self._server = await asyncio.start_server(self._answer, host, port, limit=MAX_HEAD)
        bound = self._server.sockets[0].getsockname()
        return host, int(bound[1])

    async def close(self) -> None:
        """Stop listening. From Python 3.12 this also waits for the connections open, at most
        ``READ_TIMEOUT`` for a client that sends nothing."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def ready(self, statuses: Sequence[ConsumerStatus]) -> bool:
        """Every queue is consuming (``statuses``: the handle's), and the service is not
        stopping."""
        return bool(statuses) and all(s.consuming for s in statuses) and not self.stopping

    def respond(self, method: str, path: str) -> Response:
        """The answer to ``method path``."""
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"only GET and HEAD\n"
        if path == "/livez":
            return HTTPStatus.OK, TEXT, b"ok\n"
        if path == "/healthz":
            statuses = self.status()
            ready = self.ready(statuses)
            body = {
                "ready": ready,
                "stopping": self.stopping,
                "queues": [dataclasses.asdict(s) for s in statuses],
            }
            code = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return code, "application/json", json.dumps(body, default=_iso).encode() + b"\n"
        if path == "/metrics":
            if self.metrics is None:
                return HTTPStatus.NOT_FOUND, TEXT, NO_METRICS
            content_type, exposition = self.metrics()
            return HTTPStatus.OK, content_type, exposition
        return HTTPStatus.NOT_FOUND, TEXT, b"not found: try /livez, /healthz or /metrics\n"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response, head_only = await self._handle(reader)
            if response is not None:
                writer.write(_encode(response, head_only))
                await writer.drain()
        except ConnectionError:
            pass  # the client left before the answer: nothing to tell it
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[Response | None, bool]:
        """The response to the request on ``reader`` (``None``: none), and whether it is to a
        ``HEAD`` (headers only)."""
        try:
            method, path = await _read_request(reader)
        except (TimeoutError, asyncio.IncompleteReadError):
            return None, False  # the client went quiet, or away
        except (asyncio.LimitOverrunError, ValueError):
            return (HTTPStatus.BAD_REQUEST, TEXT, b"bad request\n"), False
        try:
            return self.respond(method, path), method == "HEAD"
        except Exception:
            # A bug here must not take the service down; the traceback goes to the log.
            log.exception("health check %s %s failed", method, path)
            return (HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, b"internal error\n"), False


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of the request on ``reader``; its headers are read and ignored.

    :raises ValueError: the request line is not ``METHOD target HTTP/x.y``.
    """
    async with asyncio.timeout(READ_TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"not an HTTP request line: {line!r}")
    return parts[0], urlsplit(parts[1]).path


def _encode(response: Response, head_only: bool) -> bytes:
    code, content_type, body = response
    headers = [
        f"HTTP/1.1 {code.value} {code.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers.append("Allow: GET, HEAD")
    head = "\r\n".join(headers).encode("latin-1") + b"\r\n\r\n"
    return head if head_only else head + body


def _iso(value: Any) -> str:
    """JSON for what ``json`` cannot write: a status's ``since``."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
