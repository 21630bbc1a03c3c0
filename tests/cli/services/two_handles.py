"""A module with two handles: ``run`` needs ``--handle`` to pick one."""

from __future__ import annotations

from eventrabbit import ConsumeChannel, build_event_dependencies
from tests.helpers import BROKER_URL

events_a, handle_a = build_event_dependencies(BROKER_URL)
events_b, handle_b = build_event_dependencies(BROKER_URL)
channel = ConsumeChannel(BROKER_URL, "test.run.two-handles")
