"""Contract reports: seed, exports (CSV, XLSX), aggregates, search and clean-up, with a
real worker on the ``reports`` queue, RabbitMQ, Redis and PostgreSQL."""

from __future__ import annotations

import csv
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from taskcore.states import State
from webapp.db import db
from webapp.migrations import WEBAPP
from webapp.reports import search as searching
from webapp.reports.exports import count_rows
from webapp.reports.filters import conditions, parse_filters
from webapp.reports.jobs import aggregates_key, read_json
from webapp.reports.models import Contract, ReportExport
from webapp.reports.seed import contract_row, seed_contracts
from webapp.reports.tasks import delete_old_exports

from .webapp_helpers import (
    add_user,
    close_web_app,
    csrf_token_from,
    log_in,
    make_web_app,
    wait_until,
)

pytest_plugins = ["tests.webapp_fixtures"]

ROWS = 8_000
AGENCY = "Ministry of Health"


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The export directory of this test, for the web app (here) and the worker (env)."""
    path = tmp_path / "exports"
    monkeypatch.setenv("WEBAPP_EXPORT_DIR", str(path))
    return path


@pytest.fixture
def reports_app(database_url: str, task_env: dict[str, str], export_dir: Path) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and schema, with contracts."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings)
    add_user(app, "vera", "viewer")
    with app.app_context():
        seed_contracts(db.engine, ROWS, seed=3)
    yield app
    close_web_app(app)


@pytest.fixture
def client(reports_app: Flask) -> FlaskClient:
    client = reports_app.test_client()
    assert log_in(client, "vera").status_code == 302
    return client


@pytest.fixture
def worker(start_webapp_worker: Any, export_dir: Path) -> Callable[[], Any]:
    """Start a real worker on the reports queue (when the test says so)."""
    return lambda: start_webapp_worker("reports", env={"WEBAPP_EXPORT_DIR": str(export_dir)})


def run(client: FlaskClient, action: str, **filters: str) -> Any:
    """Submit the /reports form with an action, as a browser does (CSRF token included)."""
    token = csrf_token_from(client.get("/reports").get_data(as_text=True))
    return client.post("/reports/run", data={"csrf_token": token, "action": action, **filters})


def matching(app: Flask, filters: dict[str, Any]) -> list[Any]:
    """The contracts a filter selects, computed here with plain SQL (no export code)."""
    table = Contract.__table__
    with app.app_context():
        query = sa.select(table).where(*conditions(parse_filters(filters))).order_by(table.c.id)
        return list(db.session.execute(query))


def test_models_and_migration_agree(reports_app: Flask) -> None:
    with reports_app.app_context():
        mine = {"contracts", "report_exports"}
        differences = [d for d in WEBAPP.differences(db.engine) if mine & set(str(d).split("'"))]
        assert differences == []
        indexes = {i["name"] for i in sa.inspect(db.engine).get_indexes("contracts")}
        assert {"ix_contracts_title_trgm", "ix_contracts_agency_signed_on"} <= indexes


def test_seed_is_deterministic_and_idempotent(reports_app: Flask) -> None:
    with reports_app.app_context():
        engine = db.engine
        rows = {r.id: dict(r._mapping) for r in db.session.execute(sa.select(Contract.__table__))}
        assert len(rows) == ROWS
        # PostgreSQL's set-based insert makes exactly what the Python path would.
        for i in (1, 2, 777, ROWS):
            assert rows[i] == contract_row(i, seed=3)
        assert len({r["agency"] for r in rows.values()}) > 10
        db.session.rollback()  # end the read: TRUNCATE (--replace) waits for every reader
        assert seed_contracts(engine, ROWS, seed=3) == 0  # already there: left alone
        assert seed_contracts(engine, 100, seed=3, replace=True) == 100
        count = db.session.execute(sa.select(sa.func.count()).select_from(Contract)).scalar()
        assert count == 100


def test_export_csv_and_xlsx_with_progress(
    reports_app: Flask, client: FlaskClient, worker: Any, export_dir: Path
) -> None:
    import openpyxl

    worker()
    filters = {"agency": AGENCY, "date_from": "2020-03-01", "date_to": "2024-06-30"}
    expected = matching(reports_app, filters)
    with reports_app.app_context():
        counted = count_rows(db.session.connection(), parse_filters(filters))
    assert counted == len(expected) > 500
    task_app = reports_app.extensions["taskcore"]

    for fmt in ("csv", "xlsx"):
        response = run(client, f"export_{fmt}", **filters)
        assert response.status_code == 302, response.get_data(as_text=True)
        export_id = response.headers["Location"].rsplit("/", 1)[1]
        seen: list[dict[str, Any]] = []

        def finished(export_id: str = export_id, seen: list[dict[str, Any]] = seen) -> bool:
            status = task_app.status(export_id)
            if status.state == State.PROGRESS and status.progress:
                seen.append(status.progress)
            return status.ready

        wait_until(finished, interval=0.005)
        status = task_app.status(export_id)
        assert status.state == State.SUCCESS, status
        assert status.result["rows"] == counted
        # Progress was reported as rows were written, and ended at the total.
        assert seen and all(0 <= p["current"] <= p["total"] == counted for p in seen)
        assert status.progress["current"] == status.progress["total"] == counted

        page = client.get(f"/reports/exports/{export_id}").get_data(as_text=True)
        assert "Ready" in page and f"{counted:,} rows" in page and "data-live-done" in page
        download = client.get(f"/reports/exports/{export_id}/download")
        assert download.status_code == 200
        assert f".{fmt}" in download.headers["Content-Disposition"]
        path = export_dir / f"contracts-{export_id}.{fmt}"
        assert path.read_bytes() == download.data
        download.close()

        if fmt == "csv":
            with open(path, newline="", encoding="utf-8") as f:
                table = list(csv.reader(f))
            header, body = table[0], table[1:]
            assert header[0] == "Reference"
            got = [(r[0], r[1], r[2], r[3], r[4], r[5], Decimal(r[6])) for r in body]
        else:
            book = openpyxl.load_workbook(path, read_only=True)
            sheet = book.worksheets[0]
            table = list(sheet.iter_rows(values_only=True))
            book.close()
            header, body = table[0], table[1:]
            assert header[0] == "Reference"
            got = [
                (r[0], r[1].date().isoformat(), r[2], r[3], r[4], r[5],
                 Decimal(str(r[6])).quantize(Decimal("0.01")))
                for r in body
            ]  # fmt: skip
        want = sorted(
            (r.reference, r.signed_on.isoformat(), r.agency, r.category, r.supplier, r.title,
             r.amount)
            for r in expected
        )  # fmt: skip
        assert len(got) == counted
        assert sorted(got) == want
        # In the export's own order: by date, then id.
        assert [g[1] for g in got] == sorted(g[1] for g in got)

    listing = client.get("/reports").get_data(as_text=True)
    assert listing.count("Download") >= 2 and AGENCY in listing


def test_a_second_click_returns_the_running_export(
    reports_app: Flask, client: FlaskClient, worker: Any, export_dir: Path
) -> None:
    filters = {"category": "Construction", "text": "Acme"}
    first = run(client, "export_csv", **filters)
    second = run(client, "export_csv", **filters)
    assert first.status_code == second.status_code == 302
    export_id = first.headers["Location"].rsplit("/", 1)[1]
    assert second.headers["Location"] == first.headers["Location"]
    # Another format or filter is another job.
    other = run(client, "export_xlsx", **filters)
    assert other.headers["Location"] != first.headers["Location"]

    # No worker yet: the page shows a spinner and the queue's backlog, and refreshes itself.
    page = client.get(f"/reports/exports/{export_id}").get_data(as_text=True)
    assert 'class="spinner"' in page and "Waiting for a worker" in page
    assert "2 jobs waiting in the reports queue" in page and "no worker is consuming" in page
    assert 'data-live="export"' in page and "data-live-done" not in page

    worker()
    task_app = reports_app.extensions["taskcore"]
    wait_until(lambda: task_app.status(export_id).ready)
    wait_until(lambda: task_app.status(other.headers["Location"].rsplit("/", 1)[1]).ready)
    assert sorted(p.name for p in export_dir.iterdir()) == sorted(
        [f"contracts-{export_id}.csv", f"contracts-{other.headers['Location'][-32:]}.xlsx"]
    )
    with reports_app.app_context():
        assert db.session.query(ReportExport).count() == 2
        done = db.session.get(ReportExport, export_id)
        assert done.status == "done" and done.created_by == "vera"
        assert done.row_count == len(matching(reports_app, filters))
    # Once it is done, asking again makes a new export.
    again = run(client, "export_csv", **filters)
    assert again.headers["Location"] != first.headers["Location"]


def test_aggregates_and_search(reports_app: Flask, client: FlaskClient, worker: Any) -> None:
    filters = {"date_from": "2021-01-01", "date_to": "2023-12-31"}
    response = run(client, "aggregates", **filters)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/reports/aggregates?")
    waiting = client.get(location).get_data(as_text=True)
    assert 'class="spinner"' in waiting and 'data-busy="yes"' in waiting
    # A search (sent with priority HIGH: someone waits for its first page).
    search = run(client, "search", text="BRIDGE")
    search_url = search.headers["Location"]
    assert search_url.startswith("/reports/searches/")
    assert 'class="spinner"' in client.get(search_url).get_data(as_text=True)

    worker()
    page = wait_until(
        lambda: 'data-busy="no"' in (p := client.get(location).get_data(as_text=True)) and p
    )
    assert "Computed" in page and "By agency" in page

    # The cached value equals an independent computation over the same rows.
    task_app = reports_app.extensions["taskcore"]
    cached = read_json(task_app, aggregates_key(task_app, parse_filters(filters)))
    assert cached is not None and cached["computed_at"]
    ttl = task_app.redis.ttl(aggregates_key(task_app, parse_filters(filters)))
    assert 0 < ttl <= 3600
    rows = matching(reports_app, filters)
    groups: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups["agency"][r.agency].append(r.amount)
        groups["category"][r.category].append(r.amount)
        groups["month"][r.signed_on.strftime("%Y-%m")].append(r.amount)
    cent = Decimal("0.01")
    assert cached["total"]["count"] == len(rows)
    assert Decimal(cached["total"]["sum"]) == sum(r.amount for r in rows)
    for name, buckets in groups.items():
        got = {g["key"]: g for g in cached[f"by_{name}"]}
        assert set(got) == set(buckets)
        for key, amounts in buckets.items():
            assert got[key]["count"] == len(amounts)
            assert Decimal(got[key]["sum"]) == sum(amounts)
            average = (sum(amounts) / len(amounts)).quantize(cent)
            assert abs(Decimal(got[key]["avg"]) - average) <= cent
    assert [g["key"] for g in cached["by_month"]] == sorted(groups["month"])

    # The search: every match, newest first, 50 a page.
    search_id = search_url.rsplit("/", 1)[1]
    wait_until(lambda: task_app.status(search_id).ready)
    expected = sorted(
        matching(reports_app, {"text": "bridge"}),
        key=lambda r: (r.signed_on, r.id),
        reverse=True,
    )
    assert len(expected) > searching.PAGE_SIZE
    pages = -(-len(expected) // searching.PAGE_SIZE)
    first = client.get(search_url).get_data(as_text=True)
    assert f"{len(expected):,}</strong> contracts match" in first
    assert f"Page 1 of {pages}" in first
    for number in (1, pages):
        page = client.get(f"{search_url}?page={number}").get_data(as_text=True)
        chunk = expected[(number - 1) * 50 : number * 50]
        positions = [page.index(r.reference) for r in chunk]
        assert positions == sorted(positions)
        assert page.count('<tr><td class="shrink mono">CT-') == len(chunk)
    assert client.get("/reports/searches/nope").status_code == 404


def test_cleanup_removes_old_exports_and_keeps_new(
    reports_app: Flask, worker: Any, export_dir: Path
) -> None:
    export_dir.mkdir(parents=True)
    now = datetime.now().astimezone()
    ages = {"old": timedelta(days=9), "new": timedelta(days=2)}
    with reports_app.app_context():
        for name, age in ages.items():
            db.session.add(
                ReportExport(
                    id=name, format="csv", filters={}, filter_hash="x", status="done",
                    file_name=f"contracts-{name}.csv", created_at=now - age, finished_at=now - age,
                )
            )  # fmt: skip
            (export_dir / f"contracts-{name}.csv").write_text("Reference\n")
        db.session.commit()
    stray = export_dir / "contracts-stray.xlsx"  # a file whose row is gone
    stray.write_text("x")
    old = time.time() - timedelta(days=8).total_seconds()
    os.utime(stray, (old, old))

    worker()
    result = delete_old_exports.delay().get(timeout=30)
    assert result == {"exports": 1, "files": 2}
    assert sorted(p.name for p in export_dir.iterdir()) == ["contracts-new.csv"]
    with reports_app.app_context():
        assert [e.id for e in db.session.query(ReportExport)] == ["new"]
    # A shorter age given to the task (or WEBAPP_EXPORT_MAX_AGE_DAYS) deletes the rest.
    assert delete_old_exports.delay(1).get(timeout=30) == {"exports": 1, "files": 1}
    # The daily schedule is declared on the web app's TaskApp.
    assert "reports-delete-old-exports" in reports_app.extensions["taskcore"].schedules


def test_bad_filter_shows_the_form_with_messages(reports_app: Flask, client: FlaskClient) -> None:
    response = run(client, "export_csv", date_from="2024-05-01", date_to="2024-01-01")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "The end date is before the start date." in page
    assert 'value="2024-05-01"' in page  # what was typed is kept
    response = run(client, "search", date_from="yesterday", text="x")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not a date" in page and "at least 2 characters" in page
    assert run(client, "drop_tables").status_code == 400
    assert client.get("/reports/aggregates?date_from=2024-13-01").status_code == 400
    with reports_app.app_context():
        assert db.session.query(ReportExport).count() == 0


def test_broker_down_is_a_clear_message_and_nothing_is_created(
    database_url: str, task_env: dict[str, str], export_dir: Path
) -> None:
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    settings["TASKCORE_BROKER_URL"] = "amqp://guest:guest@127.0.0.1:1/"
    app = make_web_app(database_url, **settings)
    try:
        add_user(app, "vera")
        client = app.test_client()
        log_in(client, "vera")
        started = time.monotonic()
        response = run(client, "export_csv", agency=AGENCY)
        assert time.monotonic() - started < 15
        page = response.get_data(as_text=True)
        assert response.status_code == 503
        assert "RabbitMQ" in page and "Nothing was started" in page
        assert 'name="action"' in page  # the form is still there
        with app.app_context():
            assert db.session.query(ReportExport).count() == 0
        # The idempotency key was given back: nothing blocks a retry once the broker is up.
        task_app = app.extensions["taskcore"]
        assert not list(task_app.redis.scan_iter(task_app.keys.idempotency("reports:*")))
    finally:
        close_web_app(app)


def test_pages_need_a_sign_in(reports_app: Flask) -> None:
    anonymous = reports_app.test_client()
    for url in ("/reports", "/reports/exports/x", "/reports/aggregates", "/reports/searches/x"):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
