"""The web app's Prometheus endpoint and health checks: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` (Prometheus text format) reports, with the names of ``deploy/metrics.md``:

- HTTP requests by Flask endpoint name, method and status, and their latency
  (``unmatched`` stands for requests no route matched: 404s and 405s);
- queue depths, unacked messages, consumers and dead letters per queue, live workers,
  schedule lag and the history recorder's backlog and lag, all read through
  ``Operations.metrics_reading()`` at most once per ``METRICS_CACHE_SECONDS`` (5) per
  process, so that many scrapes in a row open one broker connection, not one each;
- ``taskcore_scrape_errors_total{source}``: readings where the broker, Redis or the
  database could not be read. The values from that source are then left out of the
  scrape (absent, not stale), and the scrape itself still answers 200.

None of the three needs a sign-in (Prometheus and probes have no session): do not expose
them publicly. ``WEBAPP_METRICS_TOKEN`` makes ``/metrics`` require ``Authorization:
Bearer <token>``. ``/healthz`` says the process answers; ``/readyz`` checks that the
broker, Redis and the database answer within ``READYZ_TIMEOUT`` (2) seconds, 503 naming
the ones that do not.

Under gunicorn with several worker processes each process counts its own requests; with
``PROMETHEUS_MULTIPROC_DIR`` set (before the processes start, to an empty directory) they
write their counts there and every scrape sums all processes (prometheus_client's
multiprocess mode).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from taskcore.operations import Operations

log = logging.getLogger(__name__)

#: Seconds a reading of the broker, Redis and the database serves scrapes.
DEFAULT_CACHE_SECONDS = 5.0
#: Seconds /readyz waits for each service.
DEFAULT_READY_TIMEOUT = 2.0
#: The endpoint label of requests that matched no route.
UNMATCHED = "unmatched"
#: Methods counted by name; anything else is counted as ``other`` (labels stay bounded).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SOURCES = ("broker", "redis", "database")
EXTENSION = "webapp_metrics"

blueprint = Blueprint("metrics", __name__)


@dataclass(frozen=True)
class Instruments:
    """The metrics this process updates as it goes (the gauges are read at scrape time)."""

    requests: Counter
    duration: Histogram
    scrape_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> Instruments:
        scrape_errors = Counter(
            "taskcore_scrape_errors",
            "Readings for /metrics in which a source (broker, redis, database) could not be read",
            ["source"],
            registry=registry,
        )
        for source in SOURCES:  # every source from 0, so that rate() sees the first error
            scrape_errors.labels(source)
        return cls(
            requests=Counter(
                "taskcore_http_requests",
                "HTTP requests answered, by Flask endpoint (unmatched: no route), method, status",
                ["endpoint", "method", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "taskcore_http_request_duration_seconds",
                "Seconds from the start of a request to its response, by endpoint and method",
                ["endpoint", "method"],
                registry=registry,
            ),
            scrape_errors=scrape_errors,
        )


_shared: Instruments | None = None
_shared_lock = threading.Lock()


def _shared_instruments() -> Instruments:
    """Multiprocess mode: one set per process (they write to files, not to a registry)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Instruments.create(None)
        return _shared


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` if set: the processes' counts are summed from there."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class TaskcoreCollector(Collector):
    """Queue, worker, schedule and recorder gauges from one cached Operations reading."""

    def __init__(
        self,
        ops: Operations,
        cache_seconds: float,
        scrape_errors: Counter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ops = ops
        self.cache_seconds = cache_seconds
        self.scrape_errors = scrape_errors
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: dict[str, Any] | None = None
        self._read_at = 0.0

    def refresh(self) -> dict[str, Any]:
        """The current reading, read again if older than ``cache_seconds``.

        Concurrent scrapes wait for the one reading in progress instead of starting
        their own; the age counts from the end of a reading, so a slow source (a broker
        timing out) is not asked again by every scrape either.
        """
        with self._lock:
            stale = self._reading is None or self._clock() - self._read_at >= self.cache_seconds
            if stale:
                reading = self.ops.metrics_reading()
                for source, error in reading["errors"].items():
                    self.scrape_errors.labels(source).inc()
                    log.warning("metrics: could not read the %s: %s", source, error)
                self._reading, self._read_at = reading, self._clock()
            assert self._reading is not None
            return self._reading

    def collect(self) -> Iterator[Metric]:
        yield from (family for family in _families(self.refresh()) if family.samples)


def _families(reading: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    """The gauges of one reading; a value that is None (its source down) has no sample."""

    def by_queue(name: str, documentation: str, values: dict[str, Any] | None) -> Any:
        family = GaugeMetricFamily(name, documentation, labels=["queue"])
        for queue, value in sorted((values or {}).items()):
            if value is not None:
                family.add_metric([queue], value)
        return family

    queues = reading["queues"] or {}

    def column(key: str) -> dict[str, Any]:
        return {queue: row[key] for queue, row in queues.items()}

    yield by_queue(
        "taskcore_queue_messages_ready", "Messages ready in each queue (broker)", column("ready")
    )
    yield by_queue(
        "taskcore_queue_messages_unacked",
        "Messages delivered to live workers and not yet acknowledged (worker heartbeats)",
        reading["unacked"],
    )
    yield by_queue(
        "taskcore_queue_consumers", "Consumers of each queue (broker)", column("consumers")
    )
    yield by_queue(
        "taskcore_queue_dead_letters",
        "Messages in each queue's dead-letter queue (broker)",
        column("dead"),
    )
    yield by_queue(
        "taskcore_queue_workers_alive",
        "Live worker processes consuming each queue (heartbeats)",
        reading["queue_workers_alive"],
    )
    alive = GaugeMetricFamily("taskcore_workers_alive", "Live worker processes (heartbeats)")
    if reading["workers_alive"] is not None:
        alive.add_metric([], reading["workers_alive"])
    yield alive
    lag = GaugeMetricFamily(
        "taskcore_schedule_lag_seconds",
        "Now minus the oldest due fire time after the last recorded fire (0 on time or paused)",
        labels=["schedule"],
    )
    for schedule, seconds in sorted((reading["schedule_lag"] or {}).items()):
        lag.add_metric([schedule], seconds)
    yield lag
    for name, key, documentation in (
        (
            "taskcore_recorder_backlog_messages",
            "recorder_backlog",
            "Events ready in the history recorder's queue, not yet taken by a recorder",
        ),
        (
            "taskcore_recorder_lag_seconds",
            "recorder_lag",
            "Now minus the newest updated_at in task_runs while the recorder has a backlog, else 0",
        ),
    ):
        family = GaugeMetricFamily(name, documentation)
        if reading[key] is not None:
            family.add_metric([], reading[key])
        yield family


class WebMetrics:
    """What one Flask app exports: its registry, instruments and taskcore collector."""

    def __init__(self, app: Flask) -> None:
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry()
        if self.multiprocess_dir is not None:
            if not Path(self.multiprocess_dir).is_dir():
                raise RuntimeError(
                    f"PROMETHEUS_MULTIPROC_DIR={self.multiprocess_dir} is not a directory: "
                    "create it (empty) before starting the web app"
                )
            self.instruments = _shared_instruments()
        else:
            # A registry per app: create_app() can run many times in one process.
            self.instruments = Instruments.create(self.registry)
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        cache_seconds = _seconds(app, "METRICS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
        self.collector = TaskcoreCollector(
            app.extensions["taskcore_ops"], cache_seconds, self.instruments.scrape_errors
        )
        self.registry.register(self.collector)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """What a scrape returns, and its content type: the Prometheus text format, or
        OpenMetrics when the scraper's ``Accept`` header asks for it (Prometheus does)."""
        self.collector.refresh()  # first, so that this scrape's errors are counted in it
        encode, content_type = choose_encoder(accept)
        if self.multiprocess_dir is None:
            return encode(self.registry), content_type
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(self.collector)
        return encode(registry), content_type

    def start_request(self) -> None:
        g._metrics_started = time.perf_counter()

    def end_request(self, response: Response) -> Response:
        endpoint = request.endpoint or UNMATCHED
        method = request.method if request.method in METHODS else "other"
        self.instruments.requests.labels(endpoint, method, str(response.status_code)).inc()
        started = g.pop("_metrics_started", None)
        if started is not None:
            elapsed = time.perf_counter() - started
            self.instruments.duration.labels(endpoint, method).observe(elapsed)
        return response


def _seconds(app: Flask, key: str, default: float) -> float:
    try:
        value = float(app.config.get(key, default))
    except (TypeError, ValueError):
        value = -1.0
    if value < 0:
        raise ValueError(f"WEBAPP_{key}={app.config.get(key)!r} is not a number of seconds")
    return value


def init_metrics(app: Flask) -> None:
    """Count every request of ``app`` and add ``/metrics``, ``/healthz`` and ``/readyz``.

    Call it before other ``before_request`` hooks are added, so that the latency covers them.
    """
    state = WebMetrics(app)
    app.extensions[EXTENSION] = state
    app.before_request(state.start_request)
    app.after_request(state.end_request)
    app.register_blueprint(blueprint)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/metrics")
def scrape() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), str(token).encode()
        ):
            return _no_store(
                Response(
                    "a bearer token is required (WEBAPP_METRICS_TOKEN)\n",
                    401,
                    {"WWW-Authenticate": 'Bearer realm="metrics"'},
                    content_type="text/plain; charset=utf-8",
                )
            )
    state: WebMetrics = current_app.extensions[EXTENSION]
    body, content_type = state.exposition(request.headers.get("Accept", ""))
    return _no_store(Response(body, content_type=content_type))


@blueprint.get("/healthz")
def healthz() -> Response:
    return _no_store(jsonify(status="ok"))


@blueprint.get("/readyz")
def readyz() -> Response:
    ops: Operations = current_app.extensions["taskcore_ops"]
    timeout = _seconds(current_app, "READYZ_TIMEOUT", DEFAULT_READY_TIMEOUT)
    checks = ops.readiness(timeout=timeout)
    failing = [c["check"] for c in checks if c["status"] != "ok"]
    if not failing:
        return _no_store(jsonify(status="ok", checks=checks))
    response = jsonify(status="unavailable", failing=failing, checks=checks)
    response.status_code = 503
    return _no_store(response)
