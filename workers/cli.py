"""The ``taskcore`` command line."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import click

from . import log_setup
from .loading import APP_OPTION, load_app

if TYPE_CHECKING:
    from taskcore import TaskApp

#: Commands whose modules are imported only when they run: each command loads only
#: what it needs, and `taskcore --help` or `taskcore worker` start quickly.
LAZY_COMMANDS = {
    **{name: f"workers.ops_cli:{attr}" for name, attr in [
        ("send", "send"), ("result", "result"), ("cancel", "cancel"), ("purge", "purge"),
        ("dlq", "dlq"), ("rate-limit", "rate_limit"), ("schedule", "schedule"),
    ]},
    **{name: f"workers.monitor_cli:{name}" for name in ("inspect", "status", "health")},
    "performance": "workers.history_cli:performance",
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


#: ``--metrics-port`` of the worker, beat and recorder (TASKCORE_METRICS_PORT, a Settings field).
METRICS_PORT_OPTION = click.option(
    "--metrics-port",
    default=None,
    envvar="TASKCORE_METRICS_PORT",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on this port at /metrics (or set TASKCORE_METRICS_PORT).",
)


@click.group(cls=LazyGroup)
@click.option(
    "--loglevel",
    "-l",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="plain",
    show_default=True,
    envvar="TASKCORE_LOG_FORMAT",
    type=click.Choice(log_setup.FORMATS),
    help="plain: readable lines; json: one JSON object a line. Inside a task both carry "
    "its id, name and attempt.",
)
@click.option(
    "--log-config",
    default=None,
    envvar="TASKCORE_LOG_CONFIG",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON logging.config.dictConfig file, used instead of --loglevel/--log-format.",
)
def cli(loglevel: str, log_format: str, log_config: str | None) -> None:
    """taskcore: background tasks on RabbitMQ."""
    log_setup.configure(loglevel, log_format, log_config)


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
@click.option(
    "--burst",
    is_flag=True,
    help="Exit 0 once the queues and the delay queues are empty and no task runs "
    "(for scripts, cron and CI).",
)
@METRICS_PORT_OPTION
def worker(
    app_spec: str | None,
    queues: str | None,
    concurrency: int,
    grace_period: float,
    hostname: str | None,
    processes: int,
    max_tasks_per_child: int,
    burst: bool,
    metrics_port: int | None,
) -> None:
    """Consume queues and run their tasks until SIGTERM (or, with --burst, until drained).

    With --metrics-port, one endpoint serves the sum of every worker process's metrics.
    """
    from .supervise import exec_supervisor

    exec_supervisor(
        {
            **{
                name: click.get_current_context().find_root().params[name]
                for name in ("loglevel", "log_format", "log_config")
            },
            "app_spec": app_spec,
            "queues": [q.strip() for q in queues.split(",") if q.strip()] if queues else None,
            "concurrency": concurrency,
            "grace_period": grace_period,
            "hostname": hostname,
            "processes": processes,
            "max_tasks_per_child": max_tasks_per_child,
            "burst": burst,
            "metrics_port": metrics_port,
        }
    )


@cli.command()
@APP_OPTION
@click.option("--batch-size", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--flush-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between writes when fewer than --batch-size events arrived.",
)
@METRICS_PORT_OPTION
def recorder(
    app_spec: str | None, batch_size: int, flush_interval: float, metrics_port: int | None
) -> None:
    """Write task events into the database (DATABASE_URL) until SIGTERM."""
    import asyncio
    import signal

    from taskcore import TaskcoreError
    from taskcore.history import create_schema, make_engine
    from taskcore.recorder import Recorder

    app = load_app(app_spec)
    engine = make_engine()
    create_schema(engine)
    worker = Recorder(app, engine, batch_size=batch_size, flush_interval=flush_interval)
    _serve_metrics(app, metrics_port, "RecorderCollector", worker)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.request_stop)
        await worker.run()

    try:
        asyncio.run(main())
    except TaskcoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"recorded {worker.written} events")


@cli.command()
@APP_OPTION
@click.option("--name", default=None, help="This beat's id in logs and the leader lease.")
@METRICS_PORT_OPTION
def beat(app_spec: str | None, name: str | None, metrics_port: int | None) -> None:
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
        app.redis.ping()
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach Redis at {app.settings.redis_url}: {exc}"
        ) from exc
    _serve_metrics(app, metrics_port, "BeatCollector", runner)
    runner.run()
    app.close()


def _serve_metrics(app: TaskApp, port: int | None, collector: str, of: object) -> None:
    """Serve the metrics of a beat or recorder (``taskcore.metrics``) if a port is set."""
    port = port or app.settings.metrics_port
    if not port:
        return
    from taskcore import metrics

    try:
        metrics.serve(getattr(metrics, collector)(of), port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on port {port}: {exc}") from exc


@cli.command("init-db")
def init_db() -> None:
    """Create or upgrade the task history tables in DATABASE_URL: apply their migrations
    (idempotent). The web app's tables: `flask --app webapp db upgrade` (it does both)."""
    import sqlalchemy as sa

    from taskcore.history import create_schema, make_engine
    from taskcore.migrations import HISTORY

    engine = make_engine()
    try:
        create_schema(engine)
        revision = ", ".join(HISTORY.current(engine)) or "none"
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database {engine.url}: {exc.orig}") from exc
    finally:
        engine.dispose()
    click.echo(f"task history tables are ready in {engine.url} (revision {revision})")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="taskcore")
