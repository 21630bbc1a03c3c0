"""``MODULE:CHANNELS``: the service a command runs or checks, found in an imported module.

``MODULE`` is imported as ``python -m`` would (the current directory first on ``sys.path``);
``CHANNELS`` names a module attribute holding a ``ConsumeChannel`` or a sequence of them. The
module's ``Handle`` is the one defined at module level — ``--handle NAME`` picks one when there
are several — and its ``Events`` likewise.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from eventrabbit import ConsumeChannel, Events, Handle

from .exits import CommandError, Exit


@dataclass(frozen=True, slots=True)
class Target:
    """A service module's handle, events and channels."""

    module: ModuleType
    handle: Handle
    events: Events | None
    channels: tuple[ConsumeChannel, ...]


def load(spec: str, handle_name: str | None = None) -> Target:
    """Import ``MODULE:CHANNELS`` and find its handle, events and channels.

    :raises CommandError: (``USAGE``) the spec, module, attribute or handle is not there.
    """
    module, handle = load_module(spec, handle_name)
    channels = _channels(module, spec.partition(":")[2])
    events = _one(module, Events, None, None, required=False)
    return Target(module, handle, events, channels)


def load_module(
    spec: str, handle_name: str | None = None, what: str = "CHANNELS"
) -> tuple[ModuleType, Handle]:
    """Import the ``MODULE`` of ``MODULE:<what>`` and find its handle.

    :raises CommandError: (``USAGE``) the spec, module or handle is not there.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CommandError(f"expected MODULE:{what}, got {spec!r}", Exit.USAGE)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}", Exit.USAGE) from None
    return module, _one(module, Handle, handle_name, "--handle")


def attribute_of(module: ModuleType, attribute: str) -> Any:
    """The module attribute a dotted ``attribute`` names.

    :raises CommandError: (``USAGE``) it is not there.
    """
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise CommandError(f"{module.__name__} has no attribute {attribute!r}", Exit.USAGE)
        value = getattr(value, part)
    return value


def _channels(module: ModuleType, attribute: str) -> tuple[ConsumeChannel, ...]:
    value = attribute_of(module, attribute)
    if isinstance(value, ConsumeChannel):
        return (value,)
    if isinstance(value, Sequence) and value and all(isinstance(c, ConsumeChannel) for c in value):
        return tuple(value)
    raise CommandError(
        f"{module.__name__}.{attribute} is not a ConsumeChannel or a non-empty sequence of them",
        Exit.USAGE,
    )


def _one(
    module: ModuleType,
    kind: type[Any],
    name: str | None,
    option: str | None,
    *,
    required: bool = True,
) -> Any:
    if name is not None:
        value = getattr(module, name, None)
        if not isinstance(value, kind):
            raise CommandError(f"{module.__name__}.{name} is not a {kind.__name__}", Exit.USAGE)
        return value
    found = {key: value for key, value in vars(module).items() if isinstance(value, kind)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        if not required:
            return None
        raise CommandError(f"{module.__name__} defines no {kind.__name__}", Exit.USAGE)
    names = ", ".join(sorted(found))
    raise CommandError(
        f"{module.__name__} defines several {kind.__name__}s ({names}): pick one with {option}",
        Exit.USAGE,
    )
