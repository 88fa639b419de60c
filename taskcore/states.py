"""Task states, as stored in Redis and shown by the handle, the console and the CLI."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a task is in its life."""

    PENDING = "PENDING"  # queued, or unknown: no worker has reported on it yet
    RECEIVED = "RECEIVED"  # a worker holds it but has not started it (waiting for a token)
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"  # started, and reported progress
    RETRY = "RETRY"  # failed an attempt; another is scheduled
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"  # raised on its last attempt; the message is in <queue>.dead
    REVOKED = "REVOKED"
    DEAD = "DEAD"  # could not run at all (rejected, unknown task, bad arguments, undecodable)


#: States after which nothing more happens to a task.
READY_STATES = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED, State.DEAD})
