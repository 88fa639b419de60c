"""Settings from the environment (twelve-factor), with defaults for a laptop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

ENV_PREFIX = "TASKCORE_"
#: What ``queue_type`` (TASKCORE_QUEUE_TYPE) may be.
QUEUE_TYPES = ("classic", "quorum")


#: Celery settings people pass by habit, and what to use here instead.
CELERY_SETTINGS = {
    "task_always_eager": "there is no eager mode for production: tasks always go through "
    "the broker; in tests, taskcore.testing.run_in_process(app) runs them in the caller",
    "task_serializer": "messages are always JSON; pickle is not supported",
    "result_serializer": "results are always JSON; pickle is not supported",
    "accept_content": "workers accept only application/json",
    "task_acks_late": "taskcore always acks after the outcome (acks late)",
    "worker_prefetch_multiplier": "prefetch is twice --concurrency per queue",
    "task_routes": "use routes={'pattern': 'queue'}",
    "result_backend": "results live in Redis: redis_url (TASKCORE_REDIS_URL)",
    "beat_schedule": "use app.schedule(name, task, cron=... or every=...)",
}


@dataclass(frozen=True)
class Settings:
    """Everything a TaskApp needs to know about its surroundings.

    Each field can be set with the environment variable ``TASKCORE_<FIELD>``
    (for example ``TASKCORE_BROKER_URL``) or passed to ``TaskApp(...)``.
    """

    #: The broker, or a cluster's nodes separated by ``;`` (a list in code): connections
    #: go to the node that answered last, else to the next that answers.
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    #: One Redis (``redis://``, ``rediss://``, ``unix://``) or, through Sentinel, every
    #: sentinel ``;``-separated: ``sentinel://h1:26379/0;sentinel://h2:26379/0``.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: The master's name the sentinels monitor (needed with ``sentinel://`` URLs).
    redis_sentinel_master: str = ""
    #: Prefix of the exchanges and delay queues taskcore declares.
    namespace: str = "taskcore"
    default_queue: str = "default"
    #: Seconds a publish may take, confirm included, before PublishError (per started
    #: 10,000 messages of a batch).
    publish_timeout: float = 10.0
    connect_timeout: float = 5.0
    confirm_publish: bool = True
    #: Seconds task states and results are kept in Redis.
    result_expires: float = 86400.0
    #: Keep each task's state, result and progress in Redis. Off: workers write
    #: nothing per task (faster), and handle.get(), status and idempotency keys
    #: raise ConfigurationError; events and history still work.
    store_results: bool = True
    #: Task-name patterns (fnmatch) to queue names, e.g. {"webapp.users.*": "user_tasks"}.
    routes: Mapping[str, str] = field(default_factory=dict)
    #: Per-queue options: {"high": {"max_priority": 9}, "orders": {"type": "quorum"}}.
    queues: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: ``classic`` or ``quorum``: the type of every queue taskcore declares (work queues
    #: without a ``type`` in ``queues``, dead-letter queues, the delay cascade, the
    #: recorder's queues); the workers' exclusive control queues stay classic.
    queue_type: str = "classic"
    #: Port of the Prometheus endpoint of ``taskcore worker``, ``beat`` and ``recorder``
    #: (their ``--metrics-port``); None: no endpoint, and no metrics code runs.
    metrics_port: int | None = None
    #: The IANA time zone (``Asia/Manila``) cron schedules read their times in, unless a
    #: schedule gives its own ``tz=``.
    timezone: str = "UTC"
    #: Largest encoded arguments (bytes) a call may have: a bigger call raises
    #: PayloadTooLarge in the caller before anything is published (RabbitMQ's own
    #: max_message_size is 128 MiB on 3.x; keep big blobs elsewhere and pass a key).
    max_args_bytes: int = 1_048_576
    #: Largest encoded result (bytes) a task may return: a bigger one fails the task
    #: with PayloadTooLarge as its error.
    max_result_bytes: int = 1_048_576
    #: The broker's ``consumer_timeout`` in seconds (RabbitMQ's default: 30 minutes).
    #: A task still running at half of it has its delivery handed over to a lease.
    broker_consumer_timeout: float = 1800.0
    #: Seconds a running task's lease lasts without renewal: how long after its worker
    #: dies a leased task is run again.
    lease_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.broker_url, str):  # a cluster's nodes as a list, in code
            object.__setattr__(self, "broker_url", ";".join(self.broker_url))
        kind = self.queue_type.strip().lower() if isinstance(self.queue_type, str) else None
        if kind not in QUEUE_TYPES:
            raise ConfigurationError(
                f"{ENV_PREFIX}QUEUE_TYPE={self.queue_type!r} is not a queue type: use "
                "classic (the default) or quorum"
            )
        object.__setattr__(self, "queue_type", kind)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TASKCORE_*`` variables; keyword overrides win."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = set(overrides) - set(known)
        if unknown:
            hints = [CELERY_SETTINGS[name] for name in sorted(unknown) if name in CELERY_SETTINGS]
            raise ConfigurationError(
                f"unknown setting(s): {', '.join(sorted(unknown))}"
                + "".join(f"; {hint}" for hint in hints)
            )
        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None and name not in {"routes", "queues"}:
                values[name] = _parse(name, f.type, raw)
        values.update(overrides)
        return cls(**values)

    @property
    def safe_broker_url(self) -> str:
        """The broker URL(s) without passwords, fit for logs and error messages."""
        return ";".join(redact_url(url.strip()) for url in self.broker_url.split(";"))


def redact_url(url: str) -> str:
    """Drop the password from a URL: ``amqp://guest:secret@host/`` → ``amqp://guest@host/``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def _parse(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    if kind == "bool":
        if raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a boolean (use 1 or 0)"
        )
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number of seconds"
            ) from None
    if kind in ("int", "int | None"):
        if kind == "int | None" and not raw.strip():
            return None
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_PREFIX}{name.upper()}={raw!r} is not a whole number"
            ) from None
    return raw
