"""``python -m eventrabbit``: the ``eventrabbit`` command."""

from __future__ import annotations

import sys

from eventrabbit.cli import main

if __name__ == "__main__":
    sys.exit(main())
