"""taskcore: background tasks on RabbitMQ, with retries, dead letters and broker-side delays."""

from .app import TaskApp
from .async_result import AsyncResult
from .context import Request, current_task
from .errors import (
    BrokerUnavailable,
    ConfigurationError,
    DecodeError,
    EncodeError,
    PayloadTooLarge,
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
    WorkerStartFailed,
)
from .options import TaskOptions
from .results import TaskStatus
from .settings import Settings
from .shared import SharedTask, current_app, shared_task
from .signals import TaskEvent
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
    "PayloadTooLarge",
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
    "TaskEvent",
    "TaskFailed",
    "TaskHandle",
    "TaskOptions",
    "TaskRevoked",
    "TaskStatus",
    "TaskcoreError",
    "TimeLimitExceeded",
    "UnsupportedFeature",
    "WorkerStartFailed",
    "chain",
    "chord",
    "current_app",
    "current_task",
    "group",
    "shared_task",
]
