"""eventrabbit's benchmark suite: the same workloads through eventrabbit, a hand-written aiormq
loop (the reference), aio-pika and FastStream, in alternating rounds.

Run it with ``python -m benchmarks [--quick]``; see ``benchmarks/README.md``.
"""
