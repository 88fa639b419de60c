"""One trace from a Flask request, through the publish, into the task it queued."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskcore.worker import Worker

EXPORTER = InMemorySpanExporter()


class Listening(SpanProcessor):
    """Hands finished spans to EXPORTER only while a test here listens: the provider is
    global and set once, and other tests in this process must not fill the exporter."""

    on = False

    def on_end(self, span: ReadableSpan) -> None:
        if Listening.on:
            EXPORTER.export((span,))


def listen() -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(Listening())
        trace.set_tracer_provider(provider)  # once per process: the SDK keeps the first
    EXPORTER.clear()
    Listening.on = True


class WorkerThread:
    """A real Worker on its own event loop in a thread of this process (its spans land
    in this process's exporter)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.worker.run())

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.worker.request_stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def traced(app_from) -> Iterator[Any]:
    listen()
    app = app_from("traced")
    try:
        with WorkerThread(Worker(app, ["traced"], concurrency=2)):
            yield app
    finally:
        Listening.on = False
        EXPORTER.clear()


def test_the_task_continues_the_trace_of_the_request_that_queued_it(traced) -> None:
    app = traced
    web = Flask("shop")

    @web.post("/checkout/<int:amount>")
    def checkout(amount: int) -> dict[str, str]:
        sync = app.tasks["tests.apps.traced.charge"].delay(amount)
        async_ = app.tasks["tests.apps.traced.charge_async"].delay(amount)
        return {"sync": sync.id, "async": async_.id}

    FlaskInstrumentor().instrument_app(web)
    try:
        ids = web.test_client().post("/checkout/42").get_json()
    finally:
        FlaskInstrumentor().uninstrument_app(web)
    assert app.result(ids["sync"]).get(timeout=15) == 42
    assert app.result(ids["async"]).get(timeout=15) == 42
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    request = spans["POST /checkout/<int:amount>"]
    trace_id = request.context.trace_id
    for kind in ("charge", "charge_async"):
        publish = spans[f"tests.apps.traced.{kind} publish"]
        run = spans[f"tests.apps.traced.{kind} run"]
        assert publish.parent.span_id == request.context.span_id
        assert publish.kind == trace.SpanKind.PRODUCER and run.kind == trace.SpanKind.CONSUMER
        assert run.parent.span_id == publish.context.span_id
        assert (
            run.attributes["messaging.message.id"] == ids["sync" if kind == "charge" else "async"]
        )
    for inner, kind in (("charge card", "charge"), ("charge card asynchronously", "charge_async")):
        span = spans[inner]
        assert span.parent.span_id == spans[f"tests.apps.traced.{kind} run"].context.span_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}  # one trace


def test_a_task_sent_outside_any_trace_starts_its_own(traced) -> None:
    handle = traced.tasks["tests.apps.traced.charge"].delay(1)
    assert handle.get(timeout=15) == 1
    spans = {span.name: span for span in EXPORTER.get_finished_spans()}
    publish = spans["tests.apps.traced.charge publish"]
    run = spans["tests.apps.traced.charge run"]
    assert publish.parent is None and run.context.trace_id == publish.context.trace_id
