"""The wire format of a task message, and the envelope every publish goes out in.

A task message is an AMQP message whose body is JSON ``{"args": [...],
"kwargs": {...}}``; who and where live in the properties (``message_id`` is
the task id, ``type`` the task name) and in ``x-taskcore-*`` headers, so a
worker can route even a message whose body it cannot read.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pamqp.commands import Basic

from .errors import DecodeError, EncodeError

CONTENT_TYPE = "application/json"
PERSISTENT = 2

#: Retries already made (0 on the first attempt).
H_RETRIES = "x-taskcore-retries"
#: The work queue the message belongs to (it travels through other queues when delayed).
H_QUEUE = "x-taskcore-queue"
#: When the message is due, in Unix milliseconds: when it was sent, or when its delay
#: (countdown, eta, retry backoff) ends. The worker measures queue wait from it.
#: (Times travel as integers: AMQP tables carry Python floats as 32-bit floats,
#: which are off by minutes.)
H_ETA = "x-taskcore-eta-ms"
#: The idempotency key the message was sent with, if any.
H_IDEMPOTENCY_KEY = "x-taskcore-idempotency-key"
#: Set on a copy published again because the first one's confirm was lost with the
#: connection: the first may have arrived, so a worker treats it like a redelivery.
H_RESENT = "x-taskcore-resent"


class ReceivedMessage(Protocol):
    """What the worker and the operations commands read of a delivered message.

    Both aio-pika's ``IncomingMessage`` and the worker's ``Delivery`` have it.
    """

    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, Any] | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def content_encoding(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def app_id(self) -> str | None: ...
    @property
    def redelivered(self) -> bool | None: ...

    async def ack(self) -> None: ...
    async def nack(self, requeue: bool = True) -> None: ...


def to_ms(seconds: float) -> int:
    """A Unix time in seconds as integer milliseconds, for headers."""
    return round(seconds * 1000)


def new_task_id() -> str:
    """A fresh random task id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Envelope:
    """One AMQP publish: where it goes and what it carries."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Basic.Properties
    #: Ask the broker to return the message if no queue takes it (PublishError).
    mandatory: bool = True


@dataclass(slots=True)
class TaskMessage:
    """A task call as it travels: id, task name, queue and JSON arguments."""

    id: str
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int = 0
    eta: float | None = None
    priority: int | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        """The JSON body; raises EncodeError if an argument is not JSON."""
        return encode_body(self.task, self.args, self.kwargs)

    def properties(self) -> Basic.Properties:
        """AMQP properties: persistent, JSON, id, task name and headers."""
        headers = {
            **self.headers,
            H_RETRIES: self.retries,
            H_QUEUE: self.queue,
            H_ETA: to_ms(self.eta if self.eta is not None else time.time()),
        }
        return Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=self.id,
            message_type=self.task,
            priority=self.priority,
            timestamp=datetime.now(UTC).replace(microsecond=0),
            headers=headers,
        )


def encode_body(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """JSON-encode a call's arguments; raise EncodeError naming the task if they are not JSON."""
    call = {"args": list(args), "kwargs": dict(kwargs)}
    try:
        text = json.dumps(call, separators=(",", ":"), allow_nan=False)
        # json turns int, float, bool and None keys into strings: the task would get
        # {"1": ...} for {1: ...}. (Checked after dumps, which refuses cycles.)
        _refuse_non_string_keys(call)
    except (TypeError, ValueError) as exc:
        problem = exc
    except RecursionError:
        problem = ValueError("nested too deeply")
    else:
        return text.encode()
    raise EncodeError(
        f"arguments of {task} must be JSON (str, int, float, bool, None, list, dict "
        f"with str keys): {problem}"
    )


def _refuse_non_string_keys(value: Any) -> None:
    """Raise TypeError for the first dict key in ``value`` that is not a string."""
    containers = (dict, list, tuple)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise TypeError(f"keys must be str, not {type(key).__name__} ({key!r})")
            item = item.values()
        stack.extend(inner for inner in item if isinstance(inner, containers))


def decode(message: ReceivedMessage, queue: str) -> TaskMessage:
    """Read a message delivered from ``queue``; raise DecodeError saying what is wrong with it."""
    headers = dict(message.headers or {})
    if not message.type:
        raise DecodeError("message has no task name (AMQP 'type' property)")
    # A body in another format (Celery's pickle, say) may still parse as JSON by
    # accident; its declared type decides, so only JSON ever runs.
    if message.content_type not in (None, "", CONTENT_TYPE):
        raise DecodeError(
            f"content type {message.content_type!r} is not accepted: task messages are "
            f"JSON ({CONTENT_TYPE}); send with taskcore or serialize arguments as JSON"
        )
    if (message.content_encoding or "utf-8").lower() not in ("utf-8", "utf8"):
        raise DecodeError(
            f"content encoding {message.content_encoding!r} is not accepted: task messages "
            "are UTF-8 JSON, not compressed or binary"
        )
    try:
        payload = json.loads(message.body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("body is not JSON this worker can read: nested too deeply") from None
    if not isinstance(payload, dict):
        raise DecodeError(f"body must be a JSON object, got {type(payload).__name__}")
    args = payload.get("args", [])
    kwargs = payload.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise DecodeError("body must hold 'args' as a list and 'kwargs' as an object")
    retries = headers.get(H_RETRIES, 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise DecodeError(f"header {H_RETRIES} must be a non-negative integer, got {retries!r}")
    return TaskMessage(
        id=message.message_id or new_task_id(),
        task=message.type,
        queue=queue,
        args=args,
        kwargs=kwargs,
        retries=retries,
        headers=headers,
    )


#: Headers the broker adds when it dead-letters a message (our delay cascade
#: does this at every level); dropped when a worker republishes a message.
_BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")


def republish_headers(message: ReceivedMessage, **updates: Any) -> dict[str, Any]:
    """The message's headers without the broker's death records, plus ``updates``."""
    headers = {
        key: value
        for key, value in (message.headers or {}).items()
        if not key.startswith(_BROKER_DEATH_HEADERS)
    }
    headers.update(updates)
    return headers


def republish_properties(message: ReceivedMessage, headers: dict[str, Any]) -> Basic.Properties:
    """Properties to send a delivered message on (retry, dead letter) with new headers."""
    return Basic.Properties(
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=headers,
        delivery_mode=PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        message_type=message.type,
        app_id=message.app_id,
    )


def due_at(headers: Mapping[str, Any]) -> float | None:
    """When a message was due (Unix seconds), or None for one sent without the header."""
    value = headers.get(H_ETA)
    return value / 1000 if isinstance(value, int) else None


def retries_of(message: ReceivedMessage) -> int:
    """Retries already made, read leniently (0 when the header is missing or garbage)."""
    value = (message.headers or {}).get(H_RETRIES, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
