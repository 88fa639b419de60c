"""What ``@app.task(...)`` accepts: one frozen, checked set of options per task."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigurationError, UnsupportedFeature
from .ratelimit import parse_rate
from .topology import check_queue_name


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's options, checked when it is declared (a bad one fails at import, not at run).

    Retries wait ``retry_backoff * 2**retries`` seconds, capped at
    ``retry_backoff_max``, jittered when ``retry_jitter``; ``max_retries`` counts
    retries after the first attempt; ``autoretry_for`` lists the exceptions
    retried without an explicit ``raise Retry``. ``priority`` is 0-9 (on queues
    declared with ``max_priority``); ``soft_time_limit`` raises
    SoftTimeLimitExceeded inside the task, ``time_limit`` stops it;
    ``idempotency_key(*args, **kwargs)`` names a call so that a second one
    within ``idempotency_window`` seconds is not queued; ``rate_limit`` like
    ``"10/m"`` is global across workers (Celery's is per worker).

    ``bind=True`` passes the Task as the function's first argument (Celery's
    ``self``); ``default_retry_delay`` is the wait of ``self.retry()`` called
    without ``countdown`` or ``eta`` (Celery's meaning; ``raise Retry`` and
    ``autoretry_for`` keep the backoff). Celery's ``acks_late=True`` and
    ``serializer="json"`` are accepted and change nothing (both are how taskcore
    always works); their other values are refused, see ``CELERY_OPTIONS``.
    """

    queue: str | None = None
    max_retries: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()
    priority: int | None = None
    ignore_result: bool = False
    soft_time_limit: float | None = None
    time_limit: float | None = None
    idempotency_key: Callable[..., str] | None = None
    idempotency_window: float | None = None
    rate_limit: str | None = None
    bind: bool = False
    default_retry_delay: float | None = None

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> TaskOptions:
        """Options from decorator keywords; ConfigurationError names any that do not exist.

        Celery's options that taskcore always follows are dropped; their values that
        cannot carry over raise UnsupportedFeature saying what to use instead.
        """
        options = dict(options)
        for name, (accepted, instead) in CELERY_OPTIONS.items():
            if name in options:
                value = options.pop(name)
                if value != accepted:
                    raise UnsupportedFeature(f"@app.task({name}={value!r}) {instead}")
        known = sorted(f.name for f in fields(cls))
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigurationError(
                f"@app.task: unknown option(s) {', '.join(unknown)}; "
                f"known: name, {', '.join(known)}"
            )
        return cls(**options)

    def __post_init__(self) -> None:
        if self.queue is not None:
            check_queue_name(self.queue)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, not {self.max_retries!r}"
            )
        if self.retry_backoff < 0 or self.retry_backoff_max < 0:
            raise ConfigurationError("retry_backoff and retry_backoff_max must be >= 0 seconds")
        if not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in self.autoretry_for
        ):
            raise ConfigurationError(
                f"autoretry_for must be a tuple of exception classes, not {self.autoretry_for!r}"
            )
        check_priority(self.priority)
        _positive_or_none("soft_time_limit", self.soft_time_limit)
        _positive_or_none("time_limit", self.time_limit)
        if self.rate_limit is not None:
            parse_rate(self.rate_limit)
        if self.default_retry_delay is not None and self.default_retry_delay < 0:
            raise ConfigurationError(
                f"default_retry_delay must be >= 0 seconds, not {self.default_retry_delay!r}"
            )

    def retry_delay(self, retries: int) -> float:
        """Seconds to wait before retry number ``retries + 1``.

        Jitter is "equal jitter": a random point in the upper half of the
        backoff, so delays still grow while retries of many tasks spread out.
        """
        delay = min(self.retry_backoff * 2**retries, self.retry_backoff_max)
        if self.retry_jitter:
            delay = random.uniform(delay / 2, delay)
        return delay


#: Celery task options taskcore always follows: name -> (the one value accepted, what
#: the error for any other value says).
CELERY_OPTIONS: dict[str, tuple[Any, str]] = {
    "serializer": (
        "json",
        "is not supported: taskcore sends arguments and results as JSON only (nothing is "
        "pickled); pass JSON values (ids, not objects) and leave serializer out",
    ),
    "acks_late": (
        True,
        "is not supported: taskcore always acknowledges a message after its outcome is "
        "stored (late), so a crash redelivers it; make the task safe to run twice, or give "
        "it an idempotency_key, and leave acks_late out",
    ),
}


def check_priority(priority: int | None) -> int | None:
    """Return ``priority`` if it is None or 0-9; raise ConfigurationError otherwise."""
    if priority is not None and (not isinstance(priority, int) or not 0 <= priority <= 9):
        raise ConfigurationError(f"priority must be an integer from 0 to 9, not {priority!r}")
    return priority


def _positive_or_none(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
