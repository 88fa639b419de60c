"""What a dead letter carries: the original message plus headers that say why."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any

from .message import H_RETRIES, ReceivedMessage, republish_headers, retries_of

H_REASON = "x-taskcore-reason"
H_EXC_TYPE = "x-taskcore-exception-type"
H_EXC_MESSAGE = "x-taskcore-exception-message"
H_TRACEBACK = "x-taskcore-traceback"
H_ATTEMPTS = "x-taskcore-attempts"
H_ORIGINAL_QUEUE = "x-taskcore-original-queue"
H_DEAD_AT = "x-taskcore-dead-at"
H_WORKER = "x-taskcore-worker"

#: Why a message is dead-lettered (the value of ``x-taskcore-reason``).
REASONS = {
    "failed": "the task raised an error it is not retried for",
    "max-retries-exceeded": "the task asked for a retry after its last attempt",
    "rejected": "the task raised Reject",
    "undecodable": "the message is not a taskcore task message (not JSON, missing fields)",
    "unknown-task": "no task of that name is registered in the worker",
    "invalid-arguments": "the arguments do not fit the task's signature",
}

MAX_TEXT = 1000
MAX_TRACEBACK = 4000


def dead_letter_headers(
    message: ReceivedMessage,
    *,
    reason: str,
    error: BaseException,
    queue: str,
    worker: str,
) -> dict[str, Any]:
    """Headers for the dead-letter copy of ``message``: the reason, the error, where and when."""
    if reason not in REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    return republish_headers(
        message,
        **{
            H_REASON: reason,
            H_EXC_TYPE: f"{type(error).__module__}.{type(error).__qualname__}",
            H_EXC_MESSAGE: str(error)[:MAX_TEXT],
            H_TRACEBACK: short_traceback(error),
            H_ATTEMPTS: retries_of(message) + 1,
            H_ORIGINAL_QUEUE: queue,
            H_DEAD_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            H_WORKER: worker,
            H_RETRIES: retries_of(message),
        },
    )


def short_traceback(error: BaseException) -> str:
    """The traceback's last lines, at most MAX_TRACEBACK characters."""
    text = "".join(traceback.format_exception(error))
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-MAX_TRACEBACK:]
