"""Fault drills: real faults against the real services, then a reconciliation of every task.

Each drill sends tasks, breaks something (kills worker processes, cuts the broker
connection, restarts a service), lets the system recover, and reconciles: every
task sent either ran or sits in a dead-letter queue with a reason; none is lost.
Run them with ``make drills`` (full size) or ``python -m scripts.drills --short``
(the sizes the test suite uses, tests/test_drills.py).
"""
