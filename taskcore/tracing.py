"""Traces across the queue with OpenTelemetry, when ``opentelemetry-api`` is installed.

A publish (``delay()``, ``apply_async()``, ``map()``, a workflow) is a PRODUCER span
in the caller's trace, and each message carries its W3C context (``traceparent``,
``tracestate`` headers). The worker runs the task inside a CONSUMER span whose parent
is that context, so the task (its logs, its own spans, the calls it makes) continues
the trace of the request that queued it. Without OpenTelemetry nothing is imported
and both are a ``nullcontext``; so they are while the API is installed but no tracer
provider (an SDK) is configured.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .message import TaskMessage

#: Whether ``opentelemetry-api`` can be imported (looked up once, not imported).
AVAILABLE = importlib.util.find_spec("opentelemetry") is not None


def publishing(messages: Sequence[TaskMessage]) -> contextlib.AbstractContextManager[Any]:
    """A PRODUCER span around a publish; each message's headers get its trace context."""
    return _publishing(messages) if messages and _tracing() else contextlib.nullcontext()


def running(task: str, task_id: str, headers: Mapping[str, Any]) -> Any:
    """A CONSUMER span, child of the context in ``headers``, around a task's run."""
    return _running(task, task_id, headers) if _tracing() else contextlib.nullcontext()


def _tracing() -> bool:
    """True once the app configured a tracer provider (the API's default is a proxy).
    Asked for every task a worker runs, so the module is looked up once."""
    global _trace
    if not AVAILABLE:
        return False
    if _trace is None:
        from opentelemetry import trace

        _trace = trace
    return not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)


_trace: Any = None


@contextlib.contextmanager
def _publishing(messages: Sequence[TaskMessage]) -> Iterator[None]:
    from opentelemetry import propagate, trace

    first = messages[0]
    name = f"{first.task} publish" if len(messages) == 1 else f"publish {len(messages)} tasks"
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.destination.name": first.queue,
        "messaging.batch.message_count": len(messages),
    }
    if len(messages) == 1:
        attributes["messaging.message.id"] = first.id
    tracer = trace.get_tracer("taskcore")
    with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes):
        for message in messages:
            propagate.inject(message.headers)
        yield


@contextlib.contextmanager
def _running(task: str, task_id: str, headers: Mapping[str, Any]) -> Iterator[None]:
    from opentelemetry import propagate, trace

    carrier = {k: v for k, v in headers.items() if isinstance(v, str)}
    tracer = trace.get_tracer("taskcore")
    with tracer.start_as_current_span(
        f"{task} run",
        context=propagate.extract(carrier),
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.message.id": task_id,
        },
    ):
        yield
