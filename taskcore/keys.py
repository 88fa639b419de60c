"""Every Redis key and pub/sub channel taskcore uses, named in one place.

All of them start with the app's namespace (``TASKCORE_NAMESPACE``), so
several apps, or the tests, share one Redis without meeting.
"""

from __future__ import annotations


class RedisKeys:
    """Redis names under one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        #: Sorted set of revoked task ids, scored by when each revocation expires.
        self.revoked = f"{namespace}:revoked"
        #: Pub/sub channel on which workers hear about revocations.
        self.control_channel = f"{namespace}:control"
        #: Hash of worker heartbeats: hostname -> JSON.
        self.workers = f"{namespace}:workers"
        #: Hash of run-time rate-limit overrides: limit name -> ``"<interval> <burst> <text>"``.
        self.rate_overrides = f"{namespace}:ratelimits"
        #: Set of paused schedule names.
        self.schedules_paused = f"{namespace}:schedules:paused"
        #: Hash of schedule name -> last fire time (Unix seconds).
        self.schedules_last = f"{namespace}:schedules:last"
        #: The beat leader's lease.
        self.beat_leader = f"{namespace}:beat:leader"

    def task(self, task_id: str) -> str:
        """Hash of one task's state, result, error and progress."""
        return f"{self.namespace}:task:{task_id}"

    def idempotency(self, key: str) -> str:
        """Which task holds an idempotency key."""
        return f"{self.namespace}:idem:{key}"

    def rate(self, limit: str) -> str:
        """The theoretical arrival time of one rate limit (a task name or ``queue:<q>``)."""
        return f"{self.namespace}:rate:{limit}"

    def lease(self, task_id: str) -> str:
        """The lease of a task whose delivery was handed over (``running:<worker>`` while
        its worker renews it, then ``settled``; see leases.py)."""
        return f"{self.namespace}:lease:{task_id}"

    def schedule_claim(self, task_id: str) -> str:
        """Claimed once per schedule fire time, so no fire time is enqueued twice."""
        return f"{self.namespace}:schedules:fired:{task_id}"
