"""The ``taskcore`` command line."""

from __future__ import annotations

import importlib
import logging

import click

from .loading import APP_OPTION, load_app
from .supervise import LOG_FORMAT

#: Commands whose modules are imported only when they run: each command loads only
#: what it needs, and `taskcore --help` or `taskcore worker` start quickly.
LAZY_COMMANDS = {
    **{name: f"workers.ops_cli:{attr}" for name, attr in [
        ("send", "send"), ("result", "result"), ("cancel", "cancel"), ("purge", "purge"),
        ("dlq", "dlq"), ("rate-limit", "rate_limit"), ("schedule", "schedule"),
    ]},
    **{name: f"workers.monitor_cli:{name}" for name in ("inspect", "status", "health")},
}  # fmt: skip


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.option(
    "--loglevel",
    "-l",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def cli(loglevel: str) -> None:
    """taskcore: background tasks on RabbitMQ."""
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)


@cli.command()
@APP_OPTION
@click.option(
    "-Q",
    "--queues",
    default=None,
    metavar="Q1,Q2",
    help="Comma-separated queues to consume (default: the app's default queue).",
)
@click.option("-c", "--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--grace-period",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds running tasks may take to finish after SIGTERM before they are requeued.",
)
@click.option(
    "-n",
    "--hostname",
    default=None,
    help="Worker name: %h is the host name, %i the process slot, %p the pid.",
)
@click.option(
    "-p",
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each with its own connection and --concurrency slots.",
)
@click.option(
    "--max-tasks-per-child",
    default=0,
    type=click.IntRange(min=0),
    help="Replace a worker process after this many tasks (0: never).",
)
def worker(
    app_spec: str | None,
    queues: str | None,
    concurrency: int,
    grace_period: float,
    hostname: str | None,
    processes: int,
    max_tasks_per_child: int,
) -> None:
    """Consume queues and run their tasks until SIGTERM."""
    from .supervise import exec_supervisor

    exec_supervisor(
        {
            "loglevel": click.get_current_context().find_root().params["loglevel"],
            "app_spec": app_spec,
            "queues": [q.strip() for q in queues.split(",") if q.strip()] if queues else None,
            "concurrency": concurrency,
            "grace_period": grace_period,
            "hostname": hostname,
            "processes": processes,
            "max_tasks_per_child": max_tasks_per_child,
        }
    )


@cli.command()
@APP_OPTION
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--flush-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between writes when fewer than --batch-size events arrived.",
)
def recorder(app_spec: str | None, batch_size: int, flush_interval: float) -> None:
    """Write task events into the database (DATABASE_URL) until SIGTERM."""
    import asyncio
    import signal

    from taskcore.history import create_schema, make_engine
    from taskcore.recorder import Recorder

    app = load_app(app_spec)
    engine = make_engine()
    create_schema(engine)
    worker = Recorder(app, engine, batch_size=batch_size, flush_interval=flush_interval)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.request_stop)
        await worker.run()

    try:
        asyncio.run(main())
    except (OSError, ConnectionError) as exc:
        raise click.ClickException(
            f"cannot reach the broker at {app.settings.safe_broker_url}: {exc}"
        ) from exc
    click.echo(f"recorded {worker.written} events")


@cli.command()
@APP_OPTION
@click.option("--name", default=None, help="This beat's id in logs and the leader lease.")
def beat(app_spec: str | None, name: str | None) -> None:
    """Fire the app's periodic schedules. Run several for high availability: one leads."""
    import signal

    import redis

    from taskcore.beat import Beat

    app = load_app(app_spec)
    if not app.schedules:
        raise click.ClickException(
            f"{app_spec or 'the app'} declares no schedules: use app.schedule(...) in its module"
        )
    runner = Beat(app, name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop_event.set())
    try:
        app.results.redis.ping()
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach Redis at {app.settings.redis_url}: {exc}"
        ) from exc
    runner.run()
    app.close()


@cli.command("init-db")
def init_db() -> None:
    """Create the task history tables in DATABASE_URL (idempotent)."""
    import sqlalchemy as sa

    from taskcore.history import create_schema, make_engine

    engine = make_engine()
    try:
        create_schema(engine)
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database {engine.url}: {exc.orig}") from exc
    click.echo(f"task history tables are ready in {engine.url}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="taskcore")
