"""Looking at a running system: inspect (workers answer), status (queues, workers), health."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from taskcore.control import COMMANDS
from taskcore.operations import HEALTH_LEVELS

from .loading import APP_OPTION, load_operations
from .ops_cli import fail, failing_clearly
from .output import FORMAT_OPTION, emit


@click.command()
@APP_OPTION
@click.argument("command", type=click.Choice(COMMANDS))
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for replies.")
@FORMAT_OPTION
def inspect(app_spec, command, timeout, fmt) -> None:
    """Ask every worker: ping, active, reserved, registered, stats or queues."""
    ops = load_operations(app_spec)
    with failing_clearly():
        replies = ops.inspect(command, timeout)
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
    ops = load_operations(app_spec)
    reading = None
    while True:
        with failing_clearly():
            reading = ops.status(reading)
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
    ops = load_operations(app_spec, history=True)
    checks = ops.health(
        warn_backlog=warn_backlog, fail_backlog=fail_backlog, require_workers=require_workers
    )
    emit(checks, fmt, ["check", "status", "detail"])
    raise SystemExit(max(HEALTH_LEVELS.index(c["status"]) for c in checks))
