"""Everything an operator does to a running system, as one API.

Queue depths and rates, purging, dead letters (list, replay, purge), workers
and their heartbeats, remote inspection, schedules, rate limits, task
history and health checks. ``taskcore`` commands and the web console are two
thin faces of this class: they parse input, call it and render the answer;
neither talks to RabbitMQ, Redis or the history tables by itself.

Every method is synchronous (Flask views and click commands call it); broker
work runs on the app's background event loop, one short connection per call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity

from . import history_queries, workflow_history
from .broker import BrokerClient, connect
from .control import broadcast, read_heartbeats
from .dead_letters import (
    H_ATTEMPTS,
    H_DEAD_AT,
    H_EXC_MESSAGE,
    H_EXC_TYPE,
    H_REASON,
)
from .errors import BrokerUnavailable, ConfigurationError, QueueNotFound, TaskcoreError
from .message import H_IDEMPOTENCY_KEY, H_QUEUE, H_RETRIES, new_task_id
from .outcomes import forward
from .ratelimit import decode_override, encode_override, parse_rate
from .redis_clients import sync_client
from .states import READY_STATES, State
from .topology import dead_queue

if TYPE_CHECKING:
    from .app import TaskApp
    from .schedules import Schedule
    from .task import TaskHandle

T = TypeVar("T")

#: Headers a dead letter gained (and broker death records) that a replay drops.
_DROP_ON_REPLAY = ("x-taskcore-", "x-death", "x-first-death", "x-last-death")
_KEEP_ON_REPLAY = {H_QUEUE, H_IDEMPOTENCY_KEY}
#: States that count as failed in queue failure rates.
_FAILED = {State.FAILURE, State.DEAD}
HEALTH_LEVELS = ("ok", "warn", "fail")


class Operations:
    """The operations of one TaskApp; ``engine`` is the history database (None: no history)."""

    def __init__(self, app: TaskApp, engine: sa.Engine | None = None) -> None:
        self.app = app
        self.engine = engine

    # -- the broker -----------------------------------------------------------

    def _on_broker(self, work: Callable[[AbstractChannel], Awaitable[T]]) -> T:
        """Run ``work`` on a fresh channel of a short connection; BrokerUnavailable if down."""

        async def main() -> T:
            connection = await connect(self.app.settings)
            try:
                return await work(await connection.channel())
            finally:
                await connection.close()

        return self.app.loop.run(main())

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of ``queue``; QueueNotFound if it does not exist."""
        return self._on_broker(lambda channel: _depth(channel, queue))

    def purge(self, queue: str) -> int:
        """Remove every ready message from work queue ``queue``; returns how many."""
        return self._on_broker(lambda channel: _purge(channel, queue))

    def purge_dead(self, queue: str) -> int:
        """Remove every dead letter of ``queue``; returns how many."""
        return self.purge(dead_queue(queue))

    def dead_letters(self, queue: str, limit: int = 100) -> list[dict[str, Any]]:
        """The first ``limit`` dead letters of ``queue``, left in place, oldest first."""
        return self._on_broker(lambda channel: _peek(channel, dead_queue(queue), limit))

    def replay(
        self,
        queue: str,
        *,
        task: str | None = None,
        ids: Collection[str] | None = None,
        limit: int | None = None,
        progress: Callable[[int], None] = lambda n: None,
    ) -> tuple[int, int]:
        """Move dead letters of ``queue`` back to it with attempts reset; (moved, left in place).

        ``task`` replays only that task's, ``ids`` only those task ids, ``limit``
        at most that many. Each is removed from the dead-letter queue only after
        its copy was confirmed in the work queue, so an interruption loses
        nothing (at worst a message is in both queues).
        """
        client = BrokerClient(self.app.settings, self.app.topology)
        address = (self.app.topology.work_exchange, queue)

        async def move(message: AbstractIncomingMessage) -> None:
            if not await forward(
                client, message, address, _replay_headers(message), queues=[queue]
            ):
                raise BrokerUnavailable(
                    f"the broker did not confirm the replay of {message.message_id}; "
                    f"it stays in {dead_queue(queue)}"
                )
            progress(1)

        async def work(channel: AbstractChannel) -> tuple[int, int]:
            try:
                return await _take_dead_letters(
                    channel, dead_queue(queue), _selector(task, ids), limit, move
                )
            finally:
                await client.close()

        return self._on_broker(work)

    def discard(self, queue: str, ids: Collection[str]) -> int:
        """Delete the dead letters of ``queue`` with these task ids; returns how many."""

        async def drop(message: AbstractIncomingMessage) -> None:
            await message.ack()

        moved, _ = self._on_broker(
            lambda channel: _take_dead_letters(
                channel, dead_queue(queue), _selector(None, ids), None, drop
            )
        )
        return moved

    # -- workers --------------------------------------------------------------

    def workers(self) -> list[dict[str, Any]]:
        """Every worker process's last heartbeat, with ``alive``."""
        return read_heartbeats(self.app)

    def inspect(self, command: str, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Ask every live worker ``command`` and collect the answers within ``timeout``."""
        return self.app.loop.run(broadcast(self.app, command, timeout))

    def known_queues(self, beats: Iterable[dict[str, Any]] = ()) -> list[str]:
        """Queues the app routes to, declares options for, or that workers consume."""
        app = self.app
        queues = {app.settings.default_queue, *app.topology.queue_options}
        queues |= {app.queue_for(task) for task in app.tasks.values()}
        for beat in beats:
            queues.update(beat["queues"])
        return sorted(queues)

    def status(self, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """One reading of queues (broker), workers (heartbeats) and schedules (Redis).

        Per queue: ready, unacked, consumers, dead, tasks/s out and failure rate
        since the workers' previous heartbeats; tasks/s in needs an earlier
        reading (``previous``): the rate out plus the growth of the queue.
        """
        beats = self.workers()
        alive = [b for b in beats if b["alive"]]
        names = self.known_queues(beats)

        async def depths(channel: AbstractChannel) -> dict[str, tuple[int, int] | None]:
            found: dict[str, tuple[int, int] | None] = {}
            for name in names:
                for queue in (name, dead_queue(name)):
                    try:
                        found[queue] = await _depth(channel, queue)
                    except QueueNotFound:
                        await channel.reopen()  # a failed passive declare closes the channel
                        found[queue] = None
            return found

        found = self._on_broker(depths)
        rows = []
        for name in names:
            done, failed, seconds = _outcomes_since_previous_beat(alive, name)
            ready, dead = found[name], found[dead_queue(name)]
            out_rate = done / seconds if seconds else None
            rows.append(
                {
                    "queue": name,
                    "ready": ready[0] if ready else None,
                    "unacked": sum(b.get("held_by_queue", {}).get(name, 0) for b in alive),
                    "consumers": ready[1] if ready else None,
                    "dead": dead[0] if dead else None,
                    "in_per_s": _in_rate(previous, name, ready[0] if ready else None, out_rate),
                    "out_per_s": round(out_rate, 2) if out_rate is not None else None,
                    "failure_rate": round(failed / done, 3) if done else None,
                }
            )
        return {"queues": rows, "workers": beats, "schedules": self.schedules(), "at": time.time()}

    # -- tasks ----------------------------------------------------------------

    def cancel(self, task_id: str, terminate: bool = False) -> State | None:
        """Revoke a task (see ``TaskApp.revoke``); its state after, or None when not stored."""
        self.app.revoke(task_id, terminate=terminate)
        return self.app.status(task_id).state if self.app.settings.store_results else None

    # -- rate limits ----------------------------------------------------------

    def declared_rate_limits(self) -> dict[str, str]:
        """The limits declared in code: task name or ``queue:<q>`` -> rate."""
        app = self.app
        limits = {name: t.rate.text for name, t in app.tasks.items() if t.rate}
        for queue, options in app.topology.queue_options.items():
            if "rate_limit" in options:
                limits[f"queue:{queue}"] = options["rate_limit"]
        return limits

    def rate_limits(self) -> dict[str, str]:
        """Every limit in force: declared in code, with run-time overrides applied."""
        limits = self.declared_rate_limits()
        for name, value in self.app.redis.hgetall(self.app.keys.rate_overrides).items():
            limits[name.decode()] = decode_override(value).text
        return limits

    def set_rate_limit(self, name: str, rate: str | None) -> None:
        """Change a global rate limit at run time, for every worker within seconds.

        ``name`` is a task name or ``queue:<queue>``; ``rate`` like ``"20/m"``, or None
        to go back to the limit declared in code.
        """
        key = self.app.keys.rate_overrides
        if rate is None:
            self.app.redis.hdel(key, name)
        else:
            self.app.redis.hset(key, name, encode_override(parse_rate(rate)))

    # -- schedules ------------------------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule with its timing and time zone (``tz``), paused flag, last and next
        fire time (Unix), and the next fire time in its zone with the UTC offset
        (``next_fire_local``, ISO 8601)."""
        app, keys = self.app, self.app.keys
        paused = {p.decode() for p in app.redis.smembers(keys.schedules_paused)}
        last = {k.decode(): float(v) for k, v in app.redis.hgetall(keys.schedules_last).items()}
        now = time.time()
        rows = []
        for s in app.schedules.values():
            next_fire = s.next_after(now)
            rows.append(
                {
                    "name": s.name,
                    "task": s.task,
                    "when": s.when,
                    "tz": s.tz,
                    "queue": app.queue_for(s.task, s.queue),
                    "paused": s.name in paused,
                    "last_fire": last.get(s.name),
                    "next_fire": next_fire,
                    "next_fire_local": datetime.fromtimestamp(next_fire, s.zone).isoformat(sep=" "),
                    "missed": s.missed,
                }
            )
        return rows

    def pause_schedule(self, name: str) -> None:
        """Stop firing ``name`` (every beat, at once) until resumed."""
        self._known_schedule(name)
        self.app.redis.sadd(self.app.keys.schedules_paused, name)

    def resume_schedule(self, name: str) -> None:
        """Fire ``name`` again; fire times missed while paused are skipped."""
        self._known_schedule(name)
        keys = self.app.keys
        with self.app.redis.pipeline() as pipe:
            pipe.srem(keys.schedules_paused, name)
            pipe.hset(keys.schedules_last, name, repr(time.time()))
            pipe.execute()

    def run_schedule(self, name: str) -> TaskHandle:
        """Enqueue one run of ``name`` now, outside its timing."""
        schedule = self._known_schedule(name)
        return self.app.send_task(
            schedule.task,
            schedule.args,
            schedule.kwargs,
            queue=schedule.queue,
            task_id=f"{name}@manual-{new_task_id()}",
        )

    def _known_schedule(self, name: str) -> Schedule:
        try:
            return self.app.schedules[name]
        except KeyError:
            known = ", ".join(sorted(self.app.schedules)) or "none"
            raise ConfigurationError(f"no schedule named {name!r} (known: {known})") from None

    # -- history --------------------------------------------------------------

    def history(
        self,
        *,
        state: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        worker: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page of task runs from the history database, newest first.

        Returns ``{"runs": [...], "next": cursor or None}``; pass ``next`` back as
        ``after`` for the following page. Filters are exact, ``since``/``until``
        bound ``updated_at``, ``search`` matches a task id prefix or text in the
        arguments. A malformed ``after`` raises ConfigurationError.
        """
        return history_queries.query_runs(
            self._engine(),
            state=state,
            task=task,
            queue=queue,
            worker=worker,
            since=since,
            until=until,
            search=search,
            limit=limit,
            after=after,
        )

    def workflows(
        self, *, kind: str | None = None, limit: int = 50, after: str | None = None
    ) -> dict[str, Any]:
        """One page of chains, groups and chords, newest first, each with its state and
        how many of its tasks are done: ``{"workflows": [...], "next": cursor or None}``."""
        return workflow_history.query_workflows(self._engine(), kind=kind, limit=limit, after=after)

    def workflow(self, workflow_id: str) -> dict[str, Any] | None:
        """One chain, group or chord with each member's state, in order; None if unknown."""
        return workflow_history.workflow(self._engine(), workflow_id)

    def task_run(self, task_id: str) -> dict[str, Any] | None:
        """The history row of ``task_id`` with its ``events`` oldest first; None if unknown."""
        return history_queries.task_run(self._engine(), task_id)

    def performance(self, *, since: datetime, task: str | None = None) -> list[dict[str, Any]]:
        """Per task, runs finished since ``since``: count, failures, p50/p95/p99 run and wait.

        Keys: task, count, failed, failure_rate, runtime_p50/p95/p99 and
        wait_p50/p95/p99 (seconds); the busiest task first.
        """
        return history_queries.performance(self._engine(), since=since, task=task)

    def _engine(self) -> sa.Engine:
        if self.engine is None:
            raise ConfigurationError("no history database: give Operations an engine")
        return self.engine

    # -- charts ---------------------------------------------------------------

    def throughput(self, *, since: datetime, bucket: int = 60) -> list[dict[str, Any]]:
        """Runs finished (and failed) per ``bucket`` seconds since ``since``, from history."""
        return history_queries.throughput(self._engine(), since=since, bucket=bucket)

    # -- health ---------------------------------------------------------------

    def health(
        self,
        *,
        warn_backlog: int = 1000,
        fail_backlog: int = 10000,
        require_workers: bool = False,
    ) -> list[dict[str, str]]:
        """Checks of Redis, the database, the broker, workers and backlogs, each ok/warn/fail."""
        checks: list[dict[str, str]] = []

        def check(name: str, level: int, detail: str) -> None:
            checks.append({"check": name, "status": HEALTH_LEVELS[level], "detail": detail})

        try:
            self.app.redis.ping()
            check("redis", 0, "answers")
            redis_ok = True
        except redis.RedisError as exc:
            check("redis", 2, str(exc))
            redis_ok = False
        if self.engine is not None:
            try:
                history_queries.ping(self.engine)
                check("database", 0, self.engine.url.render_as_string(hide_password=True))
            except sa.exc.SQLAlchemyError as exc:
                check("database", 2, type(exc).__name__ + ": " + str(exc).splitlines()[0])
        reading = None
        try:
            self._on_broker(_nothing)
            check("broker", 0, self.app.settings.safe_broker_url)
            if redis_ok:
                reading = self.status()
        except TaskcoreError as exc:
            check("broker", 2, str(exc))
        if reading is not None:
            alive = [w for w in reading["workers"] if w["alive"]]
            level = 0 if alive else (2 if require_workers else 1)
            check("workers", level, f"{len(alive)} alive")
            for queue in reading["queues"]:
                ready, dead = queue["ready"] or 0, queue["dead"] or 0
                level = 2 if ready >= fail_backlog else 1 if ready >= warn_backlog or dead else 0
                check(f"queue {queue['queue']}", level, f"{ready} ready, {dead} dead")
        return checks

    # -- metrics --------------------------------------------------------------

    def metrics_reading(self, broker_timeout: float = 8.0) -> dict[str, Any]:
        """One reading of what the web app's ``/metrics`` reports, each source read once.

        A source that cannot be read is named in ``errors`` (``redis``, ``broker`` or
        ``database`` -> message) and the values that come from it are None, never stale:

        - Redis (heartbeats, schedules): ``workers_alive``; ``queue_workers_alive`` and
          ``unacked`` ({queue: n} for every known queue); ``schedule_lag`` ({name:
          seconds}: now minus the first fire time after the last recorded fire, 0 while
          that is still ahead, when paused, or when no beat ever recorded a fire).
        - the broker, one short connection (given up after ``broker_timeout`` seconds,
          connecting included): ``queues`` ({queue: {"ready", "consumers",
          "dead"}}, a value None when the broker has no such queue) and
          ``recorder_backlog`` (ready messages in the recorder's queue, None if that
          queue was never declared).
        - the database, read only while the recorder has a backlog: ``recorder_lag``,
          now minus the newest ``updated_at`` in task_runs (0 without a backlog, None
          when task_runs has no row or there is no recorder queue).
        """
        now = time.time()
        errors: dict[str, str] = {}
        reading: dict[str, Any] = {"at": now, "errors": errors}
        beats: list[dict[str, Any]] = []
        try:
            beats = self.workers()
            schedules = self.schedules()
        except Exception as exc:  # an exporter reports any failure, it never raises
            errors["redis"] = self._failure(exc)
        names = self.known_queues(beats)
        if "redis" in errors:
            reading.update(workers_alive=None, queue_workers_alive=None, unacked=None)
            reading["schedule_lag"] = None
        else:
            alive = [b for b in beats if b["alive"]]
            reading["workers_alive"] = len(alive)
            reading["queue_workers_alive"] = {
                name: sum(name in b["queues"] for b in alive) for name in names
            }
            reading["unacked"] = {
                name: sum(b.get("held_by_queue", {}).get(name, 0) for b in alive) for name in names
            }
            reading["schedule_lag"] = {row["name"]: self._lag(row, now) for row in schedules}
        try:
            depths = self._metrics_depths(names, broker_timeout)
        except TimeoutError:
            errors["broker"] = f"no answer within {broker_timeout:g}s"
            reading.update(queues=None, recorder_backlog=None, recorder_lag=None)
            return reading
        except Exception as exc:
            errors["broker"] = self._failure(exc)
            reading.update(queues=None, recorder_backlog=None, recorder_lag=None)
            return reading
        reading["queues"] = {
            name: {
                "ready": depths[name][0] if depths[name] else None,
                "consumers": depths[name][1] if depths[name] else None,
                "dead": depths[dead_queue(name)][0] if depths[dead_queue(name)] else None,
            }
            for name in names
        }
        recorder = depths[self.app.topology.recorder_queue]
        reading["recorder_backlog"] = recorder[0] if recorder else None
        reading["recorder_lag"] = 0.0 if recorder is not None and recorder[0] == 0 else None
        if recorder is not None and recorder[0] > 0 and self.engine is not None:
            try:
                newest = history_queries.newest_update(self.engine)
            except Exception as exc:
                errors["database"] = self._failure(exc)
            else:
                if newest is not None:
                    reading["recorder_lag"] = max(0.0, now - newest.timestamp())
        return reading

    @staticmethod
    def _failure(exc: BaseException) -> str:
        """What went wrong, on one line."""
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__

    def _lag(self, row: dict[str, Any], now: float) -> float:
        """Seconds a schedule's first due fire time after its last recorded fire is late."""
        if row["paused"] or row["last_fire"] is None:
            return 0.0
        due = self.app.schedules[row["name"]].next_after(row["last_fire"])
        return max(0.0, now - due)

    def _metrics_depths(
        self, names: list[str], timeout: float
    ) -> dict[str, tuple[int, int] | None]:
        """(ready, consumers) of each work queue, its dead-letter queue and the recorder's
        queue, on one connection; None for a queue the broker does not have."""
        wanted = [q for name in names for q in (name, dead_queue(name))]
        wanted.append(self.app.topology.recorder_queue)

        async def depths(channel: AbstractChannel) -> dict[str, tuple[int, int] | None]:
            found: dict[str, tuple[int, int] | None] = {}
            for queue in wanted:
                try:
                    found[queue] = await _depth(channel, queue)
                except QueueNotFound:
                    await channel.reopen()  # a failed passive declare closes the channel
                    found[queue] = None
            return found

        async def main() -> dict[str, tuple[int, int] | None]:
            connection = await connect(self.app.settings)
            try:
                return await depths(await connection.channel())
            finally:
                await connection.close()

        return self.app.loop.run(main(), timeout)  # cancelled there if it takes longer

    def readiness(self, timeout: float = 2.0) -> list[dict[str, str]]:
        """Whether the broker, Redis and the database answer, each within ``timeout``
        seconds and all at once: ``[{"check", "status": "ok"|"fail", "detail"}]``.

        Cheap enough for a load balancer's or Kubernetes' readiness probe every few
        seconds: a connection to the broker, a Redis PING on a connection of its own
        with short timeouts, a ``SELECT 1``. No queue, worker or history is read.
        """
        import dataclasses
        from concurrent.futures import ThreadPoolExecutor

        settings = dataclasses.replace(self.app.settings, connect_timeout=timeout)

        def broker() -> str:
            async def connect_and_close() -> None:
                await (await connect(settings)).close()

            self.app.loop.run(connect_and_close(), timeout + 1)
            return settings.safe_broker_url

        def redis_ping() -> str:
            client = sync_client(settings, timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
            return "answers"

        def database() -> str:
            assert self.engine is not None
            history_queries.ping(self.engine)
            return self.engine.url.render_as_string(hide_password=True)

        checks: dict[str, Callable[[], str]] = {"broker": broker, "redis": redis_ping}
        if self.engine is not None:
            checks["database"] = database
        pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="taskcore-ready")
        futures = {name: pool.submit(check) for name, check in checks.items()}
        pool.shutdown(wait=False)  # a check that hangs past the deadline is left behind
        deadline = time.monotonic() + timeout
        results = []
        for name, future in futures.items():
            try:
                detail = future.result(max(0.0, deadline - time.monotonic()))
                results.append({"check": name, "status": "ok", "detail": detail})
            except TimeoutError:
                detail = f"no answer within {timeout:g}s"
                results.append({"check": name, "status": "fail", "detail": detail})
            except Exception as exc:
                results.append({"check": name, "status": "fail", "detail": self._failure(exc)})
        return results


async def _declared(channel: AbstractChannel, name: str) -> Any:
    """The queue ``name`` (passive declare); QueueNotFound if the broker has none."""
    try:
        return await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        raise QueueNotFound(f"no queue named {name!r} on the broker") from None
    except ValueError as exc:  # the AMQP client refuses the name before asking the broker
        raise QueueNotFound(f"no queue can be named {name!r}: {exc}") from None


async def _depth(channel: AbstractChannel, name: str) -> tuple[int, int]:
    result = (await _declared(channel, name)).declaration_result
    return result.message_count or 0, result.consumer_count or 0


async def _purge(channel: AbstractChannel, name: str) -> int:
    result = await (await _declared(channel, name)).purge()
    return result.message_count or 0


async def _peek(channel: AbstractChannel, name: str, limit: int) -> list[dict[str, Any]]:
    """Read up to ``limit`` messages without removing them (all are requeued in order)."""
    queue = await _declared(channel, name)
    held: list[AbstractIncomingMessage] = []
    try:
        while len(held) < limit and (message := await queue.get(no_ack=False, fail=False)):
            held.append(message)
        return [describe_dead_letter(m) for m in held]
    finally:
        if held:  # nack all at once (multiple) keeps their order in the queue
            await held[-1].nack(multiple=True, requeue=True)


def _selector(
    task: str | None, ids: Collection[str] | None
) -> Callable[[AbstractIncomingMessage], bool]:
    wanted = set(ids) if ids is not None else None
    return lambda m: (task is None or m.type == task) and (wanted is None or m.message_id in wanted)


async def _take_dead_letters(
    channel: AbstractChannel,
    name: str,
    selected: Callable[[AbstractIncomingMessage], bool],
    limit: int | None,
    take: Callable[[AbstractIncomingMessage], Awaitable[None]],
) -> tuple[int, int]:
    """Go through dead-letter queue ``name`` once: ``take`` (and settle) each selected
    message, up to ``limit``; the others go back in place. Returns (taken, left).

    Only the messages there when the pass starts are looked at: a replayed message
    that fails again and comes back meanwhile is not replayed a second time.
    """
    queue = await _declared(channel, name)
    there = queue.declaration_result.message_count or 0
    taken, skipped = 0, []
    try:
        for _ in range(there):
            if limit is not None and taken >= limit:
                break
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            if selected(message):
                await take(message)
                taken += 1
            else:
                skipped.append(message)
    finally:
        for message in skipped:
            await message.nack(requeue=True)
    return taken, len(skipped)


async def _nothing(_channel: AbstractChannel) -> None:
    """Connecting was the check."""


def describe_dead_letter(message: AbstractIncomingMessage) -> dict[str, Any]:
    """A dead letter as a row: id, task, reason, error, attempts, arguments, headers."""
    headers = dict(message.headers or {})
    error_type = headers.get(H_EXC_TYPE)
    return {
        "id": message.message_id,
        "task": message.type,
        "reason": headers.get(H_REASON),
        "error": f"{error_type}: {headers.get(H_EXC_MESSAGE)}" if error_type else None,
        "attempts": headers.get(H_ATTEMPTS),
        "dead_at": headers.get(H_DEAD_AT),
        "body": message.body.decode(errors="replace"),
        "headers": {k: v for k, v in headers.items() if k != "x-death"},
    }


def _replay_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    headers = {
        k: v
        for k, v in (message.headers or {}).items()
        if not k.startswith(_DROP_ON_REPLAY) or k in _KEEP_ON_REPLAY
    }
    headers[H_RETRIES] = 0
    return headers


def _outcomes_since_previous_beat(
    alive: list[dict[str, Any]], queue: str
) -> tuple[int, int, float]:
    """(tasks finished, of which failed, seconds) for ``queue`` between the last two beats."""
    done = failed = 0
    seconds = 0.0
    for beat in alive:
        now, before = beat["counts"].get(queue, {}), beat["previous"]["counts"].get(queue, {})
        seconds = max(seconds, beat["at"] - beat["previous"]["at"])
        for state in READY_STATES:
            delta = now.get(state, 0) - before.get(state, 0)
            done += delta
            if state in _FAILED:
                failed += delta
    return done, failed, seconds


def _in_rate(
    previous: dict[str, Any] | None, name: str, ready: int | None, out_rate: float | None
) -> float | None:
    if previous is None or ready is None or out_rate is None:
        return None
    before = next((q for q in previous["queues"] if q["queue"] == name), None)
    if before is None or before["ready"] is None:
        return None
    seconds = time.time() - previous["at"]
    return round(max(0.0, out_rate + (ready - before["ready"]) / seconds), 2)
