"""Service modules that ``eventrabbit check`` tests import in a subprocess."""
