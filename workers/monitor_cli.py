"""Looking at a running system: inspect (workers answer), status (queues, workers), health."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import click
import redis

from taskcore import PublishError, TaskApp
from taskcore.control import COMMANDS, broadcast, read_heartbeats
from taskcore.states import READY_STATES
from taskcore.topology import dead_queue

from . import broker_ops
from .loading import APP_OPTION, load_app
from .ops_cli import fail, failing_clearly
from .output import FORMAT_OPTION, emit


@click.command()
@APP_OPTION
@click.argument("command", type=click.Choice(COMMANDS))
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for replies.")
@FORMAT_OPTION
def inspect(app_spec, command, timeout, fmt) -> None:
    """Ask every worker: ping, active, reserved, registered, stats or queues."""
    app = load_app(app_spec)
    try:
        replies = asyncio.run(broadcast(app, command, timeout))
    except (OSError, ConnectionError) as exc:
        fail(f"cannot reach the broker at {app.settings.safe_broker_url}: {exc}")
    if not replies:
        fail(f"no worker answered within {timeout}s")
    if fmt == "json":
        click.echo(json.dumps(replies, default=str, indent=2))
        return
    for reply in replies:
        answer = reply["reply"]
        if isinstance(answer, list):
            answer = ", ".join(a if isinstance(a, str) else json.dumps(a) for a in answer)
        elif isinstance(answer, dict):
            answer = json.dumps(answer, default=str)
        click.echo(f"{reply['worker']}: {answer or '(none)'}")


def known_queues(app: TaskApp, beats: list[dict[str, Any]]) -> list[str]:
    """Queues the app routes to, declares options for, or that workers consume."""
    queues = {app.settings.default_queue, *app.topology.queue_options}
    queues |= {app.queue_for(task) for task in app.tasks.values()}
    for beat in beats:
        queues.update(beat["queues"])
    return sorted(queues)


def collect(app: TaskApp, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One reading of queues (broker), workers (heartbeats) and schedules (Redis).

    Tasks/s in needs two readings (``previous``, as ``--watch`` has): it is the
    rate out plus the growth of the queue between them.
    """
    beats = read_heartbeats(app)
    alive = [b for b in beats if b["alive"]]
    names = known_queues(app, beats)

    async def depths(channel):
        found = {}
        for name in names:
            for queue in (name, dead_queue(name)):
                try:
                    found[queue] = await broker_ops.queue_depth(channel, queue)
                except broker_ops.QueueMissing:
                    found[queue] = None
        return found

    found = broker_ops.run(app, depths)
    rows = []
    for name in names:
        done = failed = 0
        seconds = 0.0
        for beat in alive:
            now, before = beat["counts"].get(name, {}), beat["previous"]["counts"].get(name, {})
            seconds = max(seconds, beat["at"] - beat["previous"]["at"])
            for state in READY_STATES:
                delta = now.get(state, 0) - before.get(state, 0)
                done += delta
                if state in {"FAILURE", "DEAD"}:
                    failed += delta
        ready = found[name]
        dead = found[dead_queue(name)]
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
    return {"queues": rows, "workers": beats, "schedules": app.schedule_info(), "at": time.time()}


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


@click.command()
@APP_OPTION
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "summary"]), default="table",
    show_default=True,
)  # fmt: skip
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between refreshes.")
def status(app_spec, fmt, watch, interval) -> None:
    """Queues (depth, consumers, dead letters, tasks/s out, failure rate), workers, schedules."""
    app = load_app(app_spec)
    reading = None
    while True:
        with failing_clearly():
            reading = collect(app, reading)
        _print_status(reading, fmt)
        if not watch:
            return
        time.sleep(interval)
        if fmt == "table":
            click.clear()


def _print_status(reading: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(reading, default=str, indent=2))
        return
    alive = [w for w in reading["workers"] if w["alive"]]
    if fmt == "summary":
        ready = sum(q["ready"] or 0 for q in reading["queues"])
        dead = sum(q["dead"] or 0 for q in reading["queues"])
        click.echo(
            f"queues={len(reading['queues'])} ready={ready} dead={dead} workers={len(alive)}"
        )
        return
    emit(reading["queues"], "table")
    click.echo("")
    emit(
        [
            {
                "worker": w["hostname"],
                "alive": w["alive"],
                "queues": ",".join(w["queues"]),
                "running": w["running"],
                "processed": w["processed"],
                "seen": w["at"],
            }
            for w in reading["workers"]
        ],
        "table",
    )
    if reading["schedules"]:
        click.echo("")
        emit(reading["schedules"], "table", ["name", "when", "paused", "last_fire", "next_fire"])


@click.command()
@APP_OPTION
@click.option("--warn-backlog", default=1000, show_default=True, help="Ready messages: warn.")
@click.option("--fail-backlog", default=10000, show_default=True, help="Ready messages: fail.")
@click.option("--require-workers", is_flag=True, help="Fail (not warn) when no worker is alive.")
@FORMAT_OPTION
def health(app_spec, warn_backlog, fail_backlog, require_workers, fmt) -> None:
    """Check broker, Redis, database, workers and backlogs; exit 0 ok, 1 warn, 2 fail."""
    app = load_app(app_spec)
    checks: list[dict[str, Any]] = []

    def check(name: str, level: int, detail: str) -> None:
        checks.append({"check": name, "status": ("ok", "warn", "fail")[level], "detail": detail})

    try:
        app.results.redis.ping()
        check("redis", 0, "answers")
        redis_ok = True
    except redis.RedisError as exc:
        check("redis", 2, str(exc))
        redis_ok = False
    import sqlalchemy as sa  # here, not at the top: worker processes never need it

    try:
        from taskcore.history import make_engine

        engine = make_engine()
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        check("database", 0, engine.url.render_as_string(hide_password=True))
        engine.dispose()
    except sa.exc.SQLAlchemyError as exc:
        check("database", 2, type(exc).__name__ + ": " + str(exc).splitlines()[0])
    reading = None
    try:
        broker_ops.run(app, _nothing)
        check("broker", 0, app.settings.safe_broker_url)
        if redis_ok:
            reading = collect(app)
    except PublishError as exc:
        check("broker", 2, str(exc))
    if reading is not None:
        alive = [w for w in reading["workers"] if w["alive"]]
        level = 0 if alive else (2 if require_workers else 1)
        check("workers", level, f"{len(alive)} alive")
        for queue in reading["queues"]:
            ready, dead = queue["ready"] or 0, queue["dead"] or 0
            level = 2 if ready >= fail_backlog else 1 if ready >= warn_backlog or dead else 0
            check(f"queue {queue['queue']}", level, f"{ready} ready, {dead} dead")
    emit(checks, fmt, ["check", "status", "detail"])
    worst = max(("ok", "warn", "fail").index(c["status"]) for c in checks)
    raise SystemExit(worst)


async def _nothing(_channel: Any) -> None:
    """Connecting was the check."""
