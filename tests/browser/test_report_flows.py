"""Exporting contracts from /reports in headless Chromium, with a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from webapp.db import db
from webapp.reports.filters import conditions, parse_filters
from webapp.reports.models import Contract
from webapp.reports.seed import seed_contracts

from ..webapp_helpers import add_user, close_web_app, make_web_app
from .test_login import sign_in

pytest_plugins = ["tests.webapp_fixtures"]

FILTERS = {"agency": "Department of Transport", "date_from": "2021-01-01", "text": "services"}


@pytest.fixture
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "exports"
    monkeypatch.setenv("WEBAPP_EXPORT_DIR", str(path))
    return path


@pytest.fixture
def browser_app(database_url: str, task_env: dict[str, str], export_dir: Path) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and schema, with 20,000 contracts."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings)
    add_user(app, "vera", "viewer")
    with app.app_context():
        seed_contracts(db.engine, 20_000)
    yield app
    close_web_app(app)


def test_export_progress_to_download_without_a_reload(
    page: Page,
    browser_app: Flask,
    start_webapp_worker: Any,
    export_dir: Path,
    screenshot_dir: Path,
) -> None:
    import openpyxl

    with browser_app.app_context():
        query = sa.select(sa.func.count()).select_from(Contract)
        expected = db.session.execute(query.where(*conditions(parse_filters(FILTERS)))).scalar()
    assert expected and expected > 50

    page.goto("/reports")
    sign_in(page, "vera")
    expect(page.get_by_role("heading", name="Contract reports")).to_be_visible()

    # A bad filter comes back with a message next to the field, and starts nothing.
    page.get_by_label("Signed from").fill("2024-05-01")
    page.get_by_label("Signed until").fill("2024-01-01")
    page.get_by_role("button", name="Export XLSX").click()
    expect(page.locator("#error-date_to")).to_have_text("The end date is before the start date.")

    page.get_by_label("Agency").select_option(FILTERS["agency"])
    page.get_by_label("Signed from").fill(FILTERS["date_from"])
    page.get_by_label("Signed until").fill("")
    page.get_by_label("Title or supplier contains").fill(FILTERS["text"])
    page.get_by_role("button", name="Export XLSX").click()
    expect(page.locator(".flash-success")).to_contain_text("queued")
    page.wait_for_load_state("load")
    export_url = page.url
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))

    # No worker yet: a spinner and where the job stands in the queue.
    status = page.locator("#export-status")
    expect(status).to_contain_text("Waiting for a worker")
    expect(page.locator("#queue-position")).to_contain_text("reports queue")
    page.screenshot(path=str(screenshot_dir / "reports-waiting.png"), full_page=True)

    start_webapp_worker("reports", env={"WEBAPP_EXPORT_DIR": str(export_dir)})
    expect(status).to_have_attribute("data-phase", "done", timeout=20_000)
    expect(status).to_contain_text(f"{expected:,} rows")
    assert page.url == export_url and loads == [], "the page updated itself without reloading"
    page.screenshot(path=str(screenshot_dir / "reports-export.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download XLSX").click()
    download = info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = screenshot_dir / download.suggested_filename
    download.save_as(saved)
    book = openpyxl.load_workbook(saved, read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert rows[0][0] == "Reference" and len(rows) - 1 == expected
    assert all(row[2] == FILTERS["agency"] for row in rows[1:])

    # The export is listed on /reports with its download.
    page.goto("/reports")
    listed = page.locator("#recent-exports tbody tr").first
    expect(listed).to_contain_text("done")
    expect(listed).to_contain_text(f"{expected:,}")
    page.screenshot(path=str(screenshot_dir / "reports-index.png"), full_page=True)

    # Aggregates of the same page's filter: a spinner, then the tables, without a reload.
    page.get_by_label("Category").select_option("Construction")
    page.get_by_role("button", name="Compute aggregates").click()
    expect(page.locator("#aggregates")).to_have_attribute("data-busy", "no", timeout=20_000)
    expect(page.locator("#by-agency")).to_contain_text("Department of Transport")
    page.screenshot(path=str(screenshot_dir / "reports-aggregates.png"), full_page=True)
