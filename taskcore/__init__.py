"""taskcore: background tasks on RabbitMQ, with retries, dead letters and broker-side delays."""

from .app import TaskApp
from .errors import (
    ConfigurationError,
    DecodeError,
    EncodeError,
    PublishError,
    Reject,
    Retry,
    TaskcoreError,
)
from .settings import Settings
from .task import RetryPolicy, Task, TaskHandle

__all__ = [
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "PublishError",
    "Reject",
    "Retry",
    "RetryPolicy",
    "Settings",
    "Task",
    "TaskApp",
    "TaskHandle",
    "TaskcoreError",
]
