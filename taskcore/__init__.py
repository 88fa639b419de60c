"""taskcore: background tasks on RabbitMQ, with retries, dead letters and broker-side delays."""

from .app import TaskApp
from .context import current_task
from .errors import (
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    EncodeError,
    PublishError,
    QueueNotFound,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskcoreError,
    TaskFailed,
    TaskRevoked,
    TimeLimitExceeded,
)
from .options import TaskOptions
from .results import TaskStatus
from .settings import Settings
from .states import READY_STATES, State
from .task import Task, TaskHandle

__all__ = [
    "READY_STATES",
    "BrokerUnavailable",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "PublishError",
    "QueueNotFound",
    "Reject",
    "Retry",
    "Settings",
    "SoftTimeLimitExceeded",
    "State",
    "Task",
    "TaskApp",
    "TaskFailed",
    "TaskHandle",
    "TaskOptions",
    "TaskRevoked",
    "TaskStatus",
    "TaskcoreError",
    "TimeLimitExceeded",
    "current_task",
]
