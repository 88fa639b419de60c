"""taskcore: background tasks on RabbitMQ, with retries, dead letters and broker-side delays."""

from .app import TaskApp
from .async_result import AsyncResult
from .context import Request, current_task
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
    UnsupportedFeature,
)
from .options import TaskOptions
from .results import TaskStatus
from .settings import Settings
from .shared import SharedTask, current_app, shared_task
from .states import READY_STATES, State
from .task import Task, TaskHandle
from .workflows import Chain, Chord, Group, GroupResult, Signature, chain, chord, group

__all__ = [
    "READY_STATES",
    "AsyncResult",
    "BrokerUnavailable",
    "Chain",
    "Chord",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "Group",
    "GroupResult",
    "PublishError",
    "QueueNotFound",
    "Reject",
    "Request",
    "Retry",
    "Settings",
    "SharedTask",
    "Signature",
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
    "UnsupportedFeature",
    "chain",
    "chord",
    "current_app",
    "current_task",
    "group",
    "shared_task",
]
