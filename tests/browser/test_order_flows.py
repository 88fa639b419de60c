"""Orders and notifications in headless Chromium, with a real worker: place an order, watch
its notifications go out without a reload, rehearse a failing SMS sender, send again.

``SCREENSHOT_DIR=/tmp/screens`` keeps ``orders-notifications.png`` (the README's copy is
``webapp/static/screenshots/orders-notifications.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from ..test_orders import FAST, make_orders, set_limits
from ..webapp_helpers import close_web_app, make_console_app
from .test_login import sign_in


@pytest.fixture
def browser_app(
    database_url: str, task_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and PostgreSQL schema."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    app = make_console_app(database_url, task_env, olivia="operator")
    set_limits(app, FAST)
    yield app
    close_web_app(app)


@pytest.fixture
def worker(start_webapp_worker: Any) -> Any:
    """A real worker on the notification queues, retrying after 0.3 s, 0.6 s, 1.2 s."""
    return start_webapp_worker(
        "notifications", "sms", "email", env={"WEBAPP_NOTIFY_RETRY_BASE": "0.3"}
    )


pytest_plugins = ["tests.webapp_fixtures"]


def test_orders_notify_and_a_failing_sender_is_rehearsed(
    page: Page, browser_app: Flask, worker: Any, screenshot_dir: Path
) -> None:
    page.goto("/login")
    sign_in(page, "olivia")

    # Invalid input: the form again, with what to fix.
    page.goto("/orders")
    page.get_by_label("Customer name").fill("Grace Hopper")
    page.get_by_label("Phone (for SMS)").fill("not a phone")
    page.get_by_label("E-mail").fill("grace@")
    page.get_by_label("Items").fill("1 compiler")
    page.get_by_label("Amount").fill("42.00")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator(".field-error")).to_have_count(2)
    expect(page.get_by_label("Customer name")).to_have_value("Grace Hopper")
    page.screenshot(path=str(screenshot_dir / "orders-invalid.png"), full_page=True)

    page.get_by_label("Phone (for SMS)").fill("+1 212 555 0100")
    page.get_by_label("E-mail").fill("grace@example.com")
    page.get_by_role("button", name="Place order").click()
    expect(page.locator(".flash-success")).to_contain_text("confirmation queued")
    page.wait_for_load_state("load")
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    sent = page.locator("[data-live=order-notifications] .badge.state-success")
    expect(sent).to_have_count(2, timeout=15_000)  # live: no reload
    assert loads == []

    page.get_by_label("New status").select_option("paid")
    page.get_by_role("button", name="Change and notify").click()
    expect(page.locator(".flash-success")).to_contain_text("placed → paid")
    expect(sent).to_have_count(4, timeout=15_000)
    page.screenshot(path=str(screenshot_dir / "order-detail.png"), full_page=True)

    # The drill: every SMS fails, retries run out, the notifications die.
    page.goto("/orders/notifications")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Make sms fail").click()
    expect(page.locator(".flash-warning")).to_contain_text("failing sms sender is on")
    expect(page.locator("#sender-sms .sender-state .badge")).to_have_text("failing")
    page.wait_for_load_state("load")
    loads.clear()
    make_orders(browser_app, 3)
    expect(page.locator("#count-dead")).to_have_text("3", timeout=20_000)
    expect(page.locator("#count-sent")).to_have_text("7", timeout=10_000)
    assert loads == []
    dead_row = page.locator("[data-live=notifications] tr:has(.badge.state-dead)").first
    expect(dead_row).to_contain_text("SendError: the failing sms sender is switched on")
    expect(dead_row.locator("td.num")).to_have_text("4")
    page.screenshot(path=str(screenshot_dir / "orders-notifications.png"), full_page=True)

    # Fixed: send one again now (the re-drive would do it within 5 minutes).
    page.get_by_role("button", name="Fix the sms sender").click()
    expect(page.locator("#sender-sms .sender-state .badge")).to_have_text("working")
    page.locator("[data-live=notifications] tr:has(.badge.state-dead)").first.get_by_role(
        "button", name="Send again"
    ).click()
    expect(page.locator(".flash-success")).to_contain_text("queued again")
    expect(page.locator("#count-dead")).to_have_text("2", timeout=15_000)
    expect(page.locator("#count-sent")).to_have_text("8", timeout=10_000)
