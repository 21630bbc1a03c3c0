"""Integrations built on eventrabbit's public seams (``eventrabbit.Hooks``), each behind an
optional extra: ``eventrabbit.contrib.prometheus`` (``pip install eventrabbit[prometheus]``).

The library core never imports this package, and importing ``eventrabbit`` imports none of
the third-party libraries these modules need.
"""
