"""The RabbitMQ whose behaviour the in-memory broker emulates.

Where RabbitMQ versions differ — ``x-last-death-*`` headers exist from 3.13 on, headers
exchanges compare top-level values more strictly from 3.13 on — the in-memory broker does what
this version does; the differential tests (``tests/differential.py``) hold it to a real
broker of that version.
"""

from __future__ import annotations

#: The emulated RabbitMQ version.
RABBITMQ_VERSION = (3, 10)
