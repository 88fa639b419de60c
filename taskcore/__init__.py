"""taskcore: background tasks on RabbitMQ, with retries, dead letters and broker-side delays."""

from .app import TaskApp
from .context import current_task
from .errors import (
    ConfigurationError,
    DecodeError,
    EncodeError,
    PublishError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskcoreError,
    TaskFailed,
    TaskRevoked,
)
from .execution import TimeLimitExceeded
from .results import TaskStatus
from .settings import Settings
from .states import READY_STATES, State
from .task import RetryPolicy, Task, TaskHandle

__all__ = [
    "READY_STATES",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "PublishError",
    "Reject",
    "Retry",
    "RetryPolicy",
    "Settings",
    "SoftTimeLimitExceeded",
    "State",
    "Task",
    "TaskApp",
    "TaskFailed",
    "TaskHandle",
    "TaskRevoked",
    "TaskStatus",
    "TaskcoreError",
    "TimeLimitExceeded",
    "current_task",
]
