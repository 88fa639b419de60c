"""The console's error pages as a person meets them: a link to a form's target, a bad queue."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect

from ..webapp_helpers import add_user
from .test_login import sign_in


def test_wrong_method_and_unknown_queue_get_the_console_page(
    page: Page, browser_app: Flask, live_server: str, screenshot_dir: Path
) -> None:
    add_user(browser_app, "olivia", "operator")
    page.goto("/login")
    sign_in(page, "olivia")
    response = page.goto("/queues/default/purge")  # a form's target opened as a link
    assert response is not None and response.status == 405
    assert "POST" in response.headers["allow"]
    expect(page.get_by_role("heading", name="Method not allowed")).to_be_visible()
    expect(page.get_by_text("This address takes POST only")).to_be_visible()
    expect(page.locator("header.topbar .who")).to_have_text("olivia")  # still the console
    expect(page.get_by_role("link", name="Back to the overview")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "error-405.png"), full_page=True)

    response = page.goto("/queues/no%20such%20queue/dead")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "error-404.png"), full_page=True)
