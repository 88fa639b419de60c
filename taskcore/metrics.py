"""Prometheus metrics of ``taskcore worker``, ``beat`` and ``recorder`` (names: deploy/metrics.md).

Imported only when a metrics port is configured (``--metrics-port`` or
``TASKCORE_METRICS_PORT``): without one, no process loads prometheus_client
and no metrics code runs per task.

* Worker processes: ``WorkerMetrics`` is one more state listener, plus a
  gauge of tasks holding a slot and a counter of broker reconnects. Under the
  supervisor the values go to files in ``PROMETHEUS_MULTIPROC_DIR`` (the
  client's multiprocess mode) and ``workers.metrics_process`` serves their sum.
* The beat and the recorder are single processes: a collector reads their
  state at scrape time and ``serve()`` starts the client's HTTP server.

Label values are bounded: task names registered in the app (anything else is
``unknown``), the worker's queues, the app's schedule names; never ids or
arguments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .states import State

if TYPE_CHECKING:
    from .app import TaskApp
    from .beat import Beat
    from .recorder import Recorder

log = logging.getLogger(__name__)

#: The ``outcome`` label of ``taskcore_tasks_total`` for each final state of an attempt.
OUTCOMES = {
    State.SUCCESS: "succeeded",
    State.FAILURE: "failed",
    State.RETRY: "retried",
    State.DEAD: "dead_lettered",
    State.REVOKED: "revoked",
}
#: The ``task`` label of a message whose task is not registered in this worker.
UNKNOWN_TASK = "unknown"
#: Seconds: tasks run from milliseconds to an hour, and wait as long in a backlog.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


def version() -> str:
    """taskcore's installed version (the ``version`` label of ``taskcore_worker_info``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("taskcore")
    except PackageNotFoundError:
        return "unknown"


class WorkerMetrics:
    """The metrics of one worker process.

    ``on_state`` is a state listener (taskcore.listeners): it counts the
    outcome of every attempt, observes run time and queue wait of attempts
    that succeeded (the only state change that carries both), and counts
    rate-limit waits. ``count_in_progress`` wraps the worker's per-message
    handler. ``registry`` is None under the supervisor: the multiprocess
    collector of the metrics process reads the values from files.
    """

    def __init__(
        self,
        app: TaskApp,
        queues: Sequence[str],
        concurrency: int,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.tasks_total = Counter(
            "taskcore_tasks_total",
            "Attempts finished, by task, queue and outcome.",
            ["task", "queue", "outcome"],
            registry=registry,
        )
        self.runtime = Histogram(
            "taskcore_task_runtime_seconds",
            "Run time of attempts that succeeded, start to finish.",
            ["task", "queue"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "taskcore_task_queue_wait_seconds",
            "Seconds from when a message was due (sent, or its delay ended) to its start, "
            "for attempts that succeeded.",
            ["task", "queue"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "taskcore_tasks_in_progress",
            "Messages holding a task slot now (running).",
            ["queue"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.rate_limit_waits = Counter(
            "taskcore_rate_limit_waits_total",
            "Messages that had to wait for a rate-limit slot.",
            ["queue"],
            registry=registry,
        )
        self.reconnects = Counter(
            "taskcore_broker_reconnects_total",
            "Times a worker process reconnected to the broker after losing it.",
            registry=registry,
        )
        self.info = Gauge(
            "taskcore_worker_info",
            "1 for each worker host: taskcore version, queues consumed, task slots per process.",
            ["version", "queues", "concurrency"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.info.labels(version(), ",".join(queues), str(concurrency)).set(1)
        self._known = frozenset(app.tasks)
        #: Label children, made once: counters by (task, queue) and outcome, and the
        #: two histograms by (task, queue), made at a task's first success.
        self._outcomes: dict[tuple[str, str], dict[str, Any]] = {}
        self._timings: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._in_progress: dict[str, Any] = {}
        # Zero for every outcome of the tasks routed to these queues, so that rates
        # and ratios have a series to start from before the first failure.
        for name, task in app.tasks.items():
            queue = app.queue_for(task)
            if queue in queues:
                self._outcomes_of(name, queue)
        for queue in queues:
            self.rate_limit_waits.labels(queue)
            self._in_progress_of(queue)

    def _outcomes_of(self, task: str, queue: str) -> dict[str, Any]:
        children = self._outcomes.get((task, queue))
        if children is None:
            children = {o: self.tasks_total.labels(task, queue, o) for o in OUTCOMES.values()}
            self._outcomes[(task, queue)] = children
        return children

    def _timings_of(self, task: str, queue: str) -> tuple[Any, Any]:
        children = self._timings.get((task, queue))
        if children is None:
            children = (self.runtime.labels(task, queue), self.queue_wait.labels(task, queue))
            self._timings[(task, queue)] = children
        return children

    def _in_progress_of(self, queue: str) -> Any:
        gauge = self._in_progress.get(queue)
        if gauge is None:
            gauge = self._in_progress[queue] = self.in_progress.labels(queue)
        return gauge

    def on_state(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        """The state listener."""
        outcome = OUTCOMES.get(state)
        if outcome is None:
            if fields.get("waiting") == "rate limit":
                self.rate_limit_waits.labels(str(fields.get("queue"))).inc()
            return
        task = fields.get("task")
        if task not in self._known:
            task = UNKNOWN_TASK
        queue = str(fields.get("queue"))
        self._outcomes_of(task, queue)[outcome].inc()
        if outcome == "succeeded":
            runtime, queue_wait = self._timings_of(task, queue)
            if (seconds := fields.get("runtime")) is not None:
                runtime.observe(seconds)
            if (seconds := fields.get("queue_wait")) is not None:
                queue_wait.observe(seconds)

    def count_in_progress(
        self, handle: Callable[[Any, str], Awaitable[None]]
    ) -> Callable[[Any, str], Awaitable[None]]:
        """``handle(message, queue)`` counted in ``taskcore_tasks_in_progress`` while it runs."""

        async def handle_counted(message: Any, queue: str) -> None:
            gauge = self._in_progress_of(queue)
            gauge.inc()
            try:
                await handle(message, queue)
            finally:
                gauge.dec()

        return handle_counted

    def reconnected(self) -> None:
        self.reconnects.inc()


class BeatCollector(Collector):
    """``taskcore beat``'s metrics, read from the beat (and Redis, for the lag) at each scrape.

    The lag comes from the last fire time each schedule recorded in Redis, so
    every beat of a group, leader or not, reports the same: now minus the
    first fire time after the last one handled, when that is due (0 when on
    time, and for paused schedules). If Redis cannot be read, the last values
    read stand in, and the lag of a beat that cannot fire keeps growing.
    """

    def __init__(self, beat: Beat) -> None:
        self.beat = beat
        self._last: dict[str, float] = {}
        self._paused: set[str] = set()

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration: collect() reads Redis

    def collect(self) -> Iterable[Metric]:
        beat = self.beat
        yield GaugeMetricFamily(
            "taskcore_beat_leader",
            "1 when this beat holds the leader lease, else 0.",
            value=1 if beat.leading else 0,
        )
        fired = dict(beat.fires)
        fires = CounterMetricFamily(
            "taskcore_schedule_fires",
            "Fire times this beat enqueued, by schedule.",
            labels=["schedule"],
        )
        for name in beat.app.schedules:
            fires.add_metric([name], fired.get(name, 0))
        yield fires
        lag = GaugeMetricFamily(
            "taskcore_schedule_lag_seconds",
            "Now minus the oldest due fire time not yet enqueued (0 when on time or paused).",
            labels=["schedule"],
        )
        for name, seconds in self.lags(time.time()).items():
            lag.add_metric([name], seconds)
        yield lag

    def lags(self, now: float) -> dict[str, float]:
        """Seconds each schedule is behind at ``now``."""
        self._read_redis()
        lags = {}
        for name, schedule in self.beat.app.schedules.items():
            last = self._last.get(name)
            if name in self._paused or last is None:
                lags[name] = 0.0
            else:
                lags[name] = max(0.0, now - schedule.next_after(last))
        return lags

    def _read_redis(self) -> None:
        keys = self.beat.keys
        try:
            pipe = self.beat.redis.pipeline(transaction=False)
            pipe.hgetall(keys.schedules_last)
            pipe.smembers(keys.schedules_paused)
            last, paused = pipe.execute()
        except (redis.RedisError, ValueError) as exc:
            log.warning("schedule lag: cannot read Redis (%s); using the last values read", exc)
            return
        self._last = {name.decode(): float(value) for name, value in last.items()}
        self._paused = {name.decode() for name in paused}


class RecorderCollector(Collector):
    """``taskcore recorder``'s metrics, read from the recorder at each scrape."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        recorder = self.recorder
        yield CounterMetricFamily(
            "taskcore_recorder_events_written",
            "Task events written to the history database.",
            value=recorder.written,
        )
        yield CounterMetricFamily(
            "taskcore_recorder_write_errors",
            "Batches of events the database refused (they went back to the queue).",
            value=recorder.write_errors,
        )
        yield CounterMetricFamily(
            "taskcore_recorder_events_dropped",
            "Task events the recorder's full queue dropped (oldest first), never written; "
            "counted when a recorder drains them from <namespace>.events.dropped.",
            value=recorder.dropped,
        )
        behind_from = recorder.behind_from
        yield GaugeMetricFamily(
            "taskcore_recorder_lag_seconds",
            "Now minus the time of the newest event written (0 when idle).",
            value=0.0 if behind_from is None else max(0.0, time.time() - behind_from),
        )


def serve(collector: Collector, port: int) -> None:
    """Serve ``collector``'s metrics and the process's own on ``:port/metrics`` (a thread)."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    start_http_server(port, registry=registry)
    log.info("serving metrics on port %d (/metrics)", port)
