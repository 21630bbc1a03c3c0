"""Fault injection: eventrabbit against private RabbitMQ nodes that the suite breaks on purpose.

Every test here is marked ``slow``; CI runs them. See ``rabbit_node`` for how the nodes are
started (never the shared broker) and ``support`` for how figures are measured.
"""
