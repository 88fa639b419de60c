"""Time the console's history queries with a million rows in task_runs.

Makes a PostgreSQL schema of its own in the test database, creates the tables
and indexes with ``history.create_schema``, bulk-loads synthetic runs (and
their events) with COPY, runs VACUUM ANALYZE, then times each Operations call
the console makes: a warm-up, then the median and maximum of several runs. The
schema is dropped at the end. Usage:

    .venv/bin/python scripts/bench_history.py [--rows 1000000] [--runs 5] [--explain]

``--explain`` prints each query's plan (EXPLAIN ANALYZE, BUFFERS).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from taskcore import TaskApp
from taskcore.history import create_schema, make_engine
from taskcore.history_queries import encode_cursor
from taskcore.operations import Operations

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DAYS = 30
RUN_COLUMNS = (
    "task_id", "task", "queue", "state", "worker", "attempts", "args", "result", "error_type",
    "error_message", "traceback", "runtime", "queue_wait", "started_at", "finished_at",
    "updated_at",
)  # fmt: skip
EVENT_COLUMNS = ("task_id", "state", "worker", "at", "data")


# -- synthetic history ------------------------------------------------------------


def task_catalogue(rng: random.Random) -> list[tuple[str, str, float, float]]:
    """(task name, queue, median runtime in s, weight): a product's tasks, a few of them busy."""
    named = [
        ("webapp.notifications.tasks.send_email", "email", 0.35),
        ("webapp.notifications.tasks.send_sms", "sms", 0.25),
        ("webapp.quizzes.tasks.grade_quiz", "default", 0.04),
        ("webapp.orders.tasks.order_created", "default", 0.02),
        ("webapp.orders.tasks.status_changed", "default", 0.02),
        ("webapp.quizzes.tasks.compute_statistics", "default", 1.5),
        ("webapp.documents.tasks.process_document", "documents", 6.0),
        ("webapp.reports.tasks.export_csv", "reports", 20.0),
        ("webapp.reports.tasks.export_xlsx", "reports", 35.0),
        ("webapp.reports.tasks.compute_aggregates", "reports", 8.0),
        ("webapp.reports.tasks.search_table", "reports", 4.0),
        ("webapp.notifications.tasks.redrive_failed_sends", "default", 0.8),
        ("webapp.notifications.tasks.purge_old_sends", "default", 2.0),
        ("webapp.reports.tasks.delete_old_exports", "default", 1.0),
    ]
    areas = ["billing", "accounts", "catalog", "search", "media", "analytics", "audit"]
    verbs = ["sync", "refresh", "rebuild", "notify", "import", "cleanup"]
    queues = ["default", "high", "low"]
    while len(named) < 48:
        name = f"webapp.{rng.choice(areas)}.tasks.{rng.choice(verbs)}_{len(named)}"
        named.append((name, rng.choice(queues), math.exp(rng.uniform(-4, 2))))
    # Zipf-like: the first tasks are the busiest.
    return [(n, q, r, 1 / (i + 1) ** 1.1) for i, (n, q, r) in enumerate(named)]


def arguments(task: str, rng: random.Random) -> str:
    """The arguments summary a worker records, shaped like the task's real calls."""
    n = rng.randrange(1, 2_000_000)
    if task.endswith("send_email"):
        kind = rng.choice(["order_confirmation", "status_update", "password_reset", "receipt"])
        call = {"args": [f"customer{n}@example.com", kind], "kwargs": {"order_id": n * 7 % 999983}}
    elif task.endswith("send_sms"):
        call = {"args": [f"+4479{n:08d}", f"Your order {n % 999983} is on its way"], "kwargs": {}}
    elif "quizzes" in task:
        call = {"args": [n % 5000], "kwargs": {"submission_id": n, "learner": f"learner{n}"}}
    elif "documents" in task:
        call = {"args": [str(uuid.UUID(int=rng.getrandbits(128), version=4))], "kwargs": {}}
    elif "reports" in task:
        call = {"args": [rng.choice(["orders", "learners", "submissions"])], "kwargs": {"by": n}}
    else:
        call = {"args": [n], "kwargs": {"batch": rng.randrange(100)}}
    return json.dumps(call)


def synthetic_runs(
    rows: int, now: datetime, rng: random.Random
) -> Iterator[tuple[list[Any], list[list[Any]]]]:
    """(task_runs row, its task_events rows) of ``rows`` runs over DAYS days, oldest first.

    About 3% fail (FAILURE or DEAD), a few are revoked or still running (recent
    ones only); run times and queue waits are log-normal with rare long tails.
    """
    catalogue = task_catalogue(rng)
    weights = [w for *_, w in catalogue]
    workers = [f"taskcore-{1000 + i}@worker-{i // 4}" for i in range(16)]
    span = DAYS * 86400
    # Oldest first, as the recorder writes them: the table is roughly in time order.
    ages = sorted((span * rng.random() for _ in range(rows)), reverse=True)
    tasks = rng.choices(catalogue, weights, k=rows)
    for age, (task, queue, median, _) in zip(ages, tasks, strict=True):
        updated = now - timedelta(seconds=age)
        runtime = (
            median
            * rng.lognormvariate(0, 0.6)
            * (rng.uniform(10, 50) if rng.random() < 0.01 else 1)
        )
        wait = rng.expovariate(20) + (rng.lognormvariate(3, 1) if rng.random() < 0.02 else 0)
        roll = rng.random()
        recent = (now - updated).total_seconds() < 600
        state = (
            "STARTED" if recent and roll < 0.1
            else "FAILURE" if roll < 0.025
            else "DEAD" if roll < 0.03
            else "REVOKED" if roll < 0.034
            else "SUCCESS"
        )  # fmt: skip
        worker = rng.choice(workers)
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        finished = updated if state != "STARTED" else None
        started = updated - timedelta(seconds=runtime) if finished else updated
        failed = state in ("FAILURE", "DEAD")
        run = [
            task_id, task, queue, state, worker, 1 + (failed and rng.random() < 0.5) * 2,
            arguments(task, rng),
            json.dumps({"ok": True}) if state == "SUCCESS" else None,
            "builtins.TimeoutError" if failed else None,
            f"upstream did not answer within {rng.randrange(5, 60)}s" if failed else None,
            "Traceback (most recent call last):\n  ...\nTimeoutError" if failed else None,
            round(runtime, 6) if finished else None, round(wait, 6), started.isoformat(),
            finished.isoformat() if finished else None, updated.isoformat(),
        ]  # fmt: skip
        events = [[task_id, "STARTED", worker, started.isoformat(), "{}"]]
        if finished:
            events.append(
                [task_id, state, worker, finished.isoformat(), json.dumps({"task": task})]
            )
        yield run, events


def load(engine: sa.Engine, rows: int, now: datetime, seed: int) -> dict[str, Any]:
    """COPY ``rows`` synthetic runs in; return samples the queries look for."""
    rng = random.Random(seed)
    samples: dict[str, Any] = {}
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        chunk = 100_000
        runs_out, events_out = io.StringIO(), io.StringIO()
        runs_csv, events_csv = csv.writer(runs_out), csv.writer(events_out)
        for made, (run, events) in enumerate(synthetic_runs(rows, now, rng), start=1):
            runs_csv.writerow(run)
            events_csv.writerows(events)
            if made == rows // 2:  # a run in the middle of the month
                samples["run"] = run
            if "email" not in samples and run[1].endswith("send_email") and made > rows // 3:
                samples["email"] = json.loads(run[6])["args"][0]
            if made % chunk == 0 or made == rows:
                _copy(cursor, "task_runs", RUN_COLUMNS, runs_out)
                _copy(cursor, "task_events", EVENT_COLUMNS, events_out)
                runs_out.seek(0), runs_out.truncate()
                events_out.seek(0), events_out.truncate()
                print(f"  loaded {made:,} runs", file=sys.stderr, end="\r")
        raw.commit()
    finally:
        raw.close()
    print(file=sys.stderr)
    return samples


def _copy(cursor: Any, table: str, columns: tuple[str, ...], data: io.StringIO) -> None:
    data.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", data)


def without_indexes(engine: sa.Engine, fill: Callable[[], Any]) -> Any:
    """Run ``fill`` with the secondary indexes dropped, then build them again (faster)."""
    with engine.begin() as connection:
        found = connection.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname NOT LIKE '%pkey'"
            )
        ).all()
        for name, _ in found:
            connection.execute(sa.text(f"DROP INDEX {name}"))
    result = fill()
    with engine.begin() as connection:
        connection.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        for name, definition in found:
            started = time.perf_counter()
            connection.execute(sa.text(definition))
            print(f"  index {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return result


# -- timing --------------------------------------------------------------------------


class StatementLog:
    """The SQL statements an engine ran, to EXPLAIN them afterwards."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[tuple[str, Any]] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append((statement, parameters))


def explain(engine: sa.Engine, statements: list[tuple[str, Any]], show: bool) -> float:
    """Total server execution time (ms) of ``statements`` under EXPLAIN ANALYZE."""
    total = 0.0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = [line for (line,) in cursor.fetchall()]
            total += float(plan[-1].split(":")[1].split()[0])  # "Execution Time: 1.234 ms"
            if show:
                print(cursor.query.decode(), *plan, "", sep="\n", file=sys.stderr)
        raw.rollback()
    finally:
        raw.close()
    return total


def measure(
    ops: Operations, log: StatementLog, name: str, call: Callable[[], Any], runs: int, show: bool
) -> dict[str, Any]:
    """A warm-up call, then ``runs`` timed calls; the statements of the last one explained."""
    call()
    times = []
    for _ in range(runs):
        log.statements.clear()
        started = time.perf_counter()
        found = call()
        times.append((time.perf_counter() - started) * 1000)
    size = len(found) if isinstance(found, list) else len(found.get("runs", [found]))
    if show:
        print(f"-- {name}", file=sys.stderr)
    server = explain(ops.engine, list(log.statements), show)
    return {
        "query": name,
        "rows": size,
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "sql_ms": server,
    }


def queries(ops: Operations, now: datetime, samples: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, call) for every query the console's task list, detail and performance run."""
    run = samples["run"]
    task_id, task, queue, worker = run[0], run[1], run[2], run[4]
    first = ops.history()
    middle = encode_cursor(datetime.fromisoformat(run[15]), task_id)
    hour, day, week = now - timedelta(hours=1), now - timedelta(days=1), now - timedelta(days=7)
    half_hour = now - timedelta(minutes=30)
    return [
        ("history()  first page of 50", lambda: ops.history()),
        ("history(after=next)  second page", lambda: ops.history(after=first["next"])),
        ("history(after=...)  a page 15 days back", lambda: ops.history(after=middle)),
        ('history(state="FAILURE")', lambda: ops.history(state="FAILURE")),
        ("history(task=...)", lambda: ops.history(task=task)),
        ('history(state="FAILURE", task=...)', lambda: ops.history(state="FAILURE", task=task)),
        ("history(queue=...)", lambda: ops.history(queue=queue)),
        ("history(worker=...)", lambda: ops.history(worker=worker)),
        ("history(since=-1h, until=-30m)", lambda: ops.history(since=hour, until=half_hour)),
        ("history(search=<e-mail in args>)", lambda: ops.history(search=samples["email"])),
        ("history(search=<task id prefix>)", lambda: ops.history(search=task_id[:8])),
        ('history(search="password_reset")', lambda: ops.history(search="password_reset")),
        ("task_run(id)  with its events", lambda: ops.task_run(task_id)),
        ("performance(since=-1h)", lambda: ops.performance(since=hour)),
        ("performance(since=-24h)", lambda: ops.performance(since=day)),
        ("performance(since=-24h, task=...)", lambda: ops.performance(since=day, task=task)),
        ("performance(since=-7d)", lambda: ops.performance(since=week)),
    ]  # fmt: skip


def page_times(database_url: str, samples: dict[str, Any], runs: int) -> list[dict[str, Any]]:
    """The console's pages through Flask's test client: routing, queries and templates,
    as the server spends them (no network). Median and max of ``runs`` after a warm-up."""
    from webapp import create_app
    from webapp.auth.models import User
    from webapp.db import db, upgrade_database

    web = create_app({"TESTING": True, "DATABASE_URL": database_url, "WTF_CSRF_ENABLED": False})
    upgrade_database(web)  # the console's tables (the factory makes none)
    with web.app_context():
        user = User(name="bench", role="viewer")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
    client = web.test_client()
    client.post("/login", data={"name": "bench", "password": "bench-password"})
    task_id = samples["run"][0]
    pages = ["/tasks", "/tasks?state=FAILURE", f"/tasks?search={samples['email']}",
             f"/tasks/{task_id}", "/performance?window=1h", "/performance?window=24h"]  # fmt: skip
    rows = []
    for url in pages:
        assert client.get(url).status_code == 200, url
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        rows.append({"page": url, "median_ms": statistics.median(times), "max_ms": max(times)})
    web.extensions["taskcore"].close()
    web.extensions["taskcore_ops"].engine.dispose()
    return rows


def print_pages(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["page"]) for r in rows)
    print("\nconsole pages, server time through Flask's test client (median and max, ms)")
    print(f"| {'page'.ljust(width)} | median ms | max ms |")
    print(f"|{'-' * (width + 2)}|----------:|-------:|")
    for r in rows:
        print(f"| {r['page'].ljust(width)} | {r['median_ms']:>9.1f} | {r['max_ms']:>6.1f} |")


def print_table(rows: list[dict[str, Any]], total: int) -> None:
    width = max(len(r["query"]) for r in rows)
    print(f"\n{total:,} rows in task_runs; median and max of the timed runs, in ms")
    print(f"| {'query'.ljust(width)} | rows | median ms | max ms | SQL ms |")
    print(f"|{'-' * (width + 2)}|-----:|----------:|-------:|-------:|")
    for r in rows:
        print(
            f"| {r['query'].ljust(width)} | {r['rows']:>4} | {r['median_ms']:>9.1f} "
            f"| {r['max_ms']:>6.1f} | {r['sql_ms']:>6.2f} |"
        )
    print(
        "\nmedian/max: the Operations call from Python (SQL, driver, row dicts), which is"
        " most of the console's server time for /tasks, /tasks/<id> and the performance"
        " view (the pages themselves are timed below).\nSQL ms: PostgreSQL's execution time"
        " of the same statements under EXPLAIN ANALYZE (one run)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    options = parser.parse_args()

    schema = f"bench_history_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    app = TaskApp("bench-history")
    try:
        create_schema(engine)
        now = datetime.now(UTC)
        started = time.perf_counter()
        samples = without_indexes(engine, lambda: load(engine, options.rows, now, options.seed))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE task_runs"))
            connection.execute(sa.text("VACUUM ANALYZE task_events"))
        print(f"  loaded and indexed in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        ops = Operations(app, engine)
        log = StatementLog(engine)
        results = [
            measure(ops, log, name, call, options.runs, options.explain)
            for name, call in queries(ops, now, samples)
        ]
        print_table(results, options.rows)
        print_pages(page_times(f"{PG_URL}?options=-csearch_path%3D{schema}", samples, options.runs))
    finally:
        app.close()
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
