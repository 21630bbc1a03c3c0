"""The ``eventrabbit`` command: run services, publish, call, and deal with dead letters.

Standard library only (``argparse``): the command adds no runtime dependency. It sits above the
library — it imports ``eventrabbit``, never the other way round. ``main`` is the console
script's entry point and ``python -m eventrabbit``'s.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
