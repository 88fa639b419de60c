"""Operations commands: send, result, cancel, purge, dlq, rate-limit, schedule, status, health."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import click
import redis

from taskcore import READY_STATES, State, TaskcoreError, TaskFailed
from taskcore.dead_letters import H_TRACEBACK
from taskcore.schedules import Schedule, find_schedule
from taskcore.topology import dead_queue

from .loading import APP_OPTION, load_app, load_operations
from .output import FORMAT_OPTION, emit


def fail(message: str, code: int = 1) -> None:
    """Print an error to stderr and exit non-zero."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def failing_clearly() -> Iterator[None]:
    """Turn the errors a command expects (taskcore's own, timeouts, Redis down) into ``fail``."""
    try:
        yield
    except redis.RedisError as exc:
        fail(f"cannot reach Redis: {exc}")
    except (TaskcoreError, TimeoutError) as exc:
        fail(str(exc))


def _json_arg(text: str, name: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=name) from None
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=name)
    return value


@click.command()
@APP_OPTION
@click.argument("task_name")
@click.option("--args", "args_json", default="[]", show_default=True, help="JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", show_default=True, help="JSON object.")
@click.option("--countdown", type=float, default=None, help="Seconds to wait before running.")
@click.option("--queue", default=None, help="Queue (default: the task's routing).")
@click.option("--task-id", default=None, help="Choose the task id.")
def send(app_spec, task_name, args_json, kwargs_json, countdown, queue, task_id) -> None:
    """Queue a task by name and print its id."""
    app = load_app(app_spec)
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    try:
        handle = app.send_task(
            task_name, args, kwargs, countdown=countdown, queue=queue, task_id=task_id
        )
    except (TaskcoreError, TypeError) as exc:
        fail(str(exc))
    click.echo(handle.id)


@click.command()
@APP_OPTION
@click.argument("task_id")
@click.option("--wait", is_flag=True, help="Wait for the task to finish.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after seconds.")
@FORMAT_OPTION
def result(app_spec, task_id, wait, timeout, fmt) -> None:
    """Show a task's state and result (exit 1 if it failed)."""
    app = load_app(app_spec)
    with failing_clearly():
        if wait:
            with contextlib.suppress(TaskFailed):
                app.result(task_id).get(timeout=timeout)
        status = app.status(task_id)
    row = status.as_dict()
    if fmt == "json":
        click.echo(json.dumps(row, default=str, indent=2))
    else:
        for key, value in row.items():
            if value not in (None, {}, ""):
                click.echo(f"{key:>12}: {value}")
    if status.state in READY_STATES - {State.SUCCESS}:
        sys.exit(1)


@click.command()
@APP_OPTION
@click.argument("task_id")
@click.option("--terminate", is_flag=True, help="Stop it even if it is running.")
def cancel(app_spec, task_id, terminate) -> None:
    """Revoke a task: skipped if not started; stopped if running with --terminate."""
    ops = load_operations(app_spec)
    with failing_clearly():
        state = ops.cancel(task_id, terminate=terminate) or "not stored"
    click.echo(f"{task_id}: revoked{' (terminate)' if terminate else ''}; state {state}")


@click.command()
@APP_OPTION
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(app_spec, queue, yes) -> None:
    """Remove every waiting message from QUEUE (not its dead letters)."""
    _purge_after_asking(app_spec, queue, "message(s)", yes)


@click.group()
def dlq() -> None:
    """Dead-letter queues: list, show, replay, purge."""


@dlq.command("list")
@APP_OPTION
@click.argument("queue")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@FORMAT_OPTION
def dlq_list(app_spec, queue, limit, fmt) -> None:
    """List the dead letters of QUEUE (without removing them)."""
    ops = load_operations(app_spec)
    with failing_clearly():
        rows = ops.dead_letters(queue, limit)
    columns = ["id", "task", "reason", "attempts", "dead_at", "error"]
    emit([{c: r[c] for c in columns} for r in rows] if fmt == "table" else rows, fmt, columns)


@dlq.command("show")
@APP_OPTION
@click.argument("queue")
@click.argument("number", default=1, type=click.IntRange(min=1))
@FORMAT_OPTION
def dlq_show(app_spec, queue, number, fmt) -> None:
    """Show the NUMBERth dead letter of QUEUE in full: reason, traceback, arguments."""
    ops = load_operations(app_spec)
    with failing_clearly():
        rows = ops.dead_letters(queue, number)
    if len(rows) < number:
        fail(f"{dead_queue(queue)} holds only {len(rows)} message(s)")
    row = rows[number - 1]
    if fmt == "json":
        click.echo(json.dumps(row, default=str, indent=2))
        return
    for key in ("id", "task", "reason", "attempts", "dead_at", "error", "body"):
        click.echo(f"{key:>9}: {row[key]}")
    traceback = row["headers"].get(H_TRACEBACK)
    if traceback:
        click.echo("traceback:\n" + traceback)


@dlq.command("replay")
@APP_OPTION
@click.argument("queue")
@click.option("--task", "task_name", default=None, help="Only dead letters of this task.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most this many.")
def dlq_replay(app_spec, queue, task_name, limit) -> None:
    """Send dead letters back to QUEUE with their attempts reset (each confirmed first)."""
    ops = load_operations(app_spec)
    with failing_clearly():
        depth, _ = ops.queue_depth(dead_queue(queue))
        length = min(depth, limit) if limit else depth
        with click.progressbar(length=length, label="replaying", file=sys.stderr) as bar:
            moved, kept = ops.replay(queue, task=task_name, limit=limit, progress=bar.update)
    kept_note = f"; {kept} of other tasks left in place" if kept else ""
    click.echo(f"replayed {moved} message(s) from {dead_queue(queue)} to {queue}{kept_note}")


@dlq.command("purge")
@APP_OPTION
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(app_spec, queue, yes) -> None:
    """Delete every dead letter of QUEUE."""
    _purge_after_asking(app_spec, dead_queue(queue), "dead letter(s)", yes)


def _purge_after_asking(app_spec: str | None, target: str, what: str, yes: bool) -> None:
    ops = load_operations(app_spec)
    if not yes:
        click.confirm(f"Remove every {what.removesuffix('(s)')} in {target!r}?", abort=True)
    with failing_clearly():
        removed = ops.purge(target)
    click.echo(f"removed {removed} {what} from {target}")


@click.command("rate-limit")
@APP_OPTION
@click.argument("name", required=False)
@click.argument("rate", required=False)
@click.option("--reset", is_flag=True, help="Go back to the limit declared in code.")
@FORMAT_OPTION
def rate_limit(app_spec, name, rate, reset, fmt) -> None:
    """Show the global rate limits, or set NAME (task or queue:<q>) to RATE, e.g. 20/m."""
    ops = load_operations(app_spec)
    with failing_clearly():
        if name and (rate or reset):
            ops.set_rate_limit(name, None if reset else rate)
        limits = ops.rate_limits()
    rows = [{"name": n, "limit": r} for n, r in sorted(limits.items()) if not name or n == name]
    emit(rows, fmt, ["name", "limit"])


@click.group()
def schedule() -> None:
    """Periodic schedules: list, next, pause, resume, run."""


@schedule.command("list")
@APP_OPTION
@FORMAT_OPTION
def schedule_list(app_spec, fmt) -> None:
    """List schedules with their timing and zone, state, last fire time (UTC) and next fire
    time (in the schedule's zone)."""
    ops = load_operations(app_spec)
    with failing_clearly():
        emit(ops.schedules(), fmt, ["name", "task", "when", "tz", "queue", "paused",
                                        "last_fire", "next_fire_local"])  # fmt: skip


@schedule.command("next")
@APP_OPTION
@click.argument("name")
@click.option("--count", default=5, show_default=True, type=click.IntRange(min=1, max=10_000))
@click.option(
    "--after",
    "after_text",
    default=None,
    metavar="TIME",
    help="ISO 8601 start, e.g. 2026-03-28T12:00 (no offset: in the schedule's zone). Default: now.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for scripts.")  # fmt: skip
def schedule_next(app_spec, name, count, after_text, fmt) -> None:
    """Print the next fire times of the schedule NAME, in its zone with the UTC offset and
    in UTC: check an expression before deploying it. Reads no service."""
    app = load_app(app_spec)
    with failing_clearly():
        found = find_schedule(app.schedules, name)
        after = _after(after_text, found) if after_text else datetime.now(UTC)
        fires = [_fire_row(t, found) for t in islice(found.fire_times(after.timestamp()), count)]
    after = after.astimezone(found.zone)
    if fmt == "json":
        row = {"name": name, "when": found.when, "tz": found.tz, "after": _iso(after)}
        click.echo(json.dumps({**row, "fires": fires}, indent=2))
        return
    click.echo(f"{name}: {found.when} in {found.tz}, after {_iso(after)}")
    for fire in fires:
        click.echo(f"  {fire['local'].replace('T', ' ')} ({fire['utc']})")


def _after(text: str, found: Schedule) -> datetime:
    """``--after`` as an aware datetime: an ISO 8601 time, read in the schedule's zone if it
    gives no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-03-28T12:00 or 2026-03-28T11:00Z",
            param_hint="--after",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=found.zone)


def _fire_row(t: float, found: Schedule) -> dict[str, Any]:
    """One fire time: in the schedule's zone (with its offset), in UTC, and Unix."""
    local = datetime.fromtimestamp(t, found.zone)
    return {"local": local.isoformat(), "utc": _utc(t), "offset": _offset(local), "unix": t}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset(local: datetime) -> str:
    """The UTC offset as +HH:MM."""
    z = local.strftime("%z")
    return f"{z[:3]}:{z[3:5]}"


def _schedule_action(verb: str, act) -> click.Command:
    @click.command(verb, help=f"{verb.capitalize()} the schedule NAME.")
    @APP_OPTION
    @click.argument("name")
    def command(app_spec, name) -> None:
        ops = load_operations(app_spec)
        with failing_clearly():
            outcome = act(ops, name)
        click.echo(outcome)

    return command


schedule.add_command(
    _schedule_action("pause", lambda ops, n: ops.pause_schedule(n) or f"{n}: paused")
)
schedule.add_command(
    _schedule_action("resume", lambda ops, n: ops.resume_schedule(n) or f"{n}: resumed")
)
schedule.add_command(_schedule_action("run", lambda ops, n: ops.run_schedule(n).id))
