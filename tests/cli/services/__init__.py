"""Small services that the ``eventrabbit run`` tests start as subprocesses.

They read what they need from environment variables the test sets (``RUN_TEST_*``), so each
test gets queues of its own.
"""
