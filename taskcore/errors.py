"""Exceptions raised by taskcore, and the two a task raises to steer its own fate."""

from __future__ import annotations

import time
from datetime import datetime


class TaskcoreError(Exception):
    """Base class for every error taskcore raises on its own account."""


class PublishError(TaskcoreError):
    """The broker did not confirm a message: unreachable, refused it, or could not route it."""


class BrokerUnavailable(PublishError):
    """The broker could not be reached (down, wrong URL or credentials)."""


class QueueNotFound(TaskcoreError, LookupError):
    """An operation named a queue the broker does not have."""


class EncodeError(TaskcoreError, TypeError):
    """Task arguments that cannot travel as JSON."""


class PayloadTooLarge(EncodeError):
    """Arguments (or a result) over the size limit: store the data elsewhere, pass its key."""


class WorkerStartFailed(TaskcoreError):
    """An ``on_worker_start`` hook raised: the worker does not consume."""


class DecodeError(TaskcoreError):
    """A delivered message that is not a taskcore task message."""


class ConfigurationError(TaskcoreError, ValueError):
    """A setting, queue name or task option that cannot work."""


class UnsupportedFeature(ConfigurationError):
    """A Celery feature or option that does not carry over; the message says what to use."""


class Retry(Exception):
    """Raise inside a task to ask for another attempt (``self.retry(...)`` raises one too).

    ``countdown`` (seconds) or ``eta`` (a datetime) sets the wait before this retry
    instead of the task's backoff; ``max_retries`` replaces the task's limit for this
    decision; ``exc`` is the error that caused it, recorded if the retries run out.
    """

    def __init__(
        self,
        countdown: float | None = None,
        exc: BaseException | None = None,
        *,
        eta: datetime | None = None,
        max_retries: int | None = None,
    ) -> None:
        if eta is not None:
            if countdown is not None:
                raise ConfigurationError("give countdown or eta, not both")
            countdown = max(0.0, eta.timestamp() - time.time())
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ConfigurationError(f"max_retries must be an integer >= 0, not {max_retries!r}")
        super().__init__(f"retry in {countdown}s" if countdown is not None else "retry")
        self.countdown = countdown
        self.exc = exc
        self.eta = eta
        self.max_retries = max_retries


class Reject(Exception):
    """Raise inside a task to send its message straight to the dead-letter queue."""

    def __init__(self, reason: str = "rejected by the task") -> None:
        super().__init__(reason)
        self.reason = reason


class TaskFailed(TaskcoreError):
    """``handle.get()`` of a task that failed, was dead-lettered or revoked.

    ``remote_type``, ``remote_message`` and ``remote_traceback`` describe the
    error as the worker saw it; ``state`` is FAILURE, DEAD or REVOKED.
    """

    def __init__(
        self,
        task_id: str,
        state: str,
        remote_type: str | None,
        remote_message: str | None,
        remote_traceback: str | None,
    ) -> None:
        super().__init__(f"task {task_id} {state}: {remote_type}: {remote_message}")
        self.task_id = task_id
        self.state = state
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class TaskRevoked(Exception):
    """Raised inside a task by ``current_task.check()`` once it has been revoked."""


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task whose ``soft_time_limit`` has passed; catch it to clean up."""


class TimeLimitExceeded(Exception):
    """A task ran past its hard ``time_limit`` and was stopped."""
