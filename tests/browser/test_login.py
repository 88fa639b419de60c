"""Signing in to the console in a real browser, and being refused as a viewer."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect

from ..webapp_helpers import PASSWORD, add_user
from .conftest import OPERATOR_ACTION_PATH, OPERATOR_ONLY_PATH


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_operator_signs_in_and_sees_the_layout(
    page: Page, browser_app: Flask, live_server: str, screenshot_dir: Path
) -> None:
    add_user(browser_app, "olivia", "operator")
    page.goto("/audit")
    expect(page).to_have_url(f"{live_server}/login?next=/audit")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "login.png"), full_page=True)

    sign_in(page, "olivia")
    expect(page).to_have_url(f"{live_server}/audit")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    bar = page.locator("header.topbar")
    expect(bar.locator(".who")).to_have_text("olivia")
    expect(bar.locator(".badge")).to_have_text("operator")
    for label in ("Overview", "Tasks", "Queues", "Workers", "Schedules", "Rate limits"):
        expect(bar.get_by_role("link", name=label, exact=True)).to_be_visible()
    expect(bar.get_by_role("link", name="Audit")).to_have_attribute("aria-current", "page")
    # The sign-in itself is the first audit entry.
    expect(page.locator("table tbody tr").first).to_contain_text("login")
    page.screenshot(path=str(screenshot_dir / "layout.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/audit")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_refused_with_a_message(page: Page, browser_app: Flask) -> None:
    add_user(browser_app, "olivia", "operator")
    page.goto("/login")
    sign_in(page, "olivia", "not my password")
    expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    expect(page.locator("header .who")).to_have_count(0)


def test_a_viewer_is_refused_an_operator_page(
    page: Page, browser_app: Flask, screenshot_dir: Path
) -> None:
    add_user(browser_app, "victor", "viewer")
    page.goto(OPERATOR_ONLY_PATH)
    sign_in(page, "victor")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("This needs the operator role")).to_be_visible()
    expect(page.locator("header .who")).to_have_text("victor")
    page.screenshot(path=str(screenshot_dir / "forbidden.png"), full_page=True)
    response = page.goto(OPERATOR_ONLY_PATH)
    assert response is not None and response.status == 403


def test_fetch_json_from_a_page_carries_the_csrf_token(page: Page, browser_app: Flask) -> None:
    add_user(browser_app, "olivia", "operator")
    add_user(browser_app, "victor", "viewer")
    page.goto("/login?next=/audit")
    sign_in(page, "olivia")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.wait_for_function("() => typeof window.fetchJSON === 'function'")  # a deferred script
    post = "(url) => fetchJSON(url, {method: 'POST', body: {}})"
    assert page.evaluate(post, OPERATOR_ACTION_PATH) == {"done": True}
    # The same POST without the token is refused: CSRF checks cover JSON from pages too.
    status = page.evaluate(
        "(url) => fetch(url, {method: 'POST', headers: {Accept: 'application/json'}})"
        ".then((r) => r.status)",
        OPERATOR_ACTION_PATH,
    )
    assert status == 400

    page.get_by_role("button", name="Sign out").click()
    page.goto("/login?next=/audit")
    sign_in(page, "victor")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.wait_for_function("() => typeof window.fetchJSON === 'function'")
    refused = page.evaluate(
        "(url) => fetchJSON(url, {method: 'POST', body: {}})"
        ".then(() => 'allowed', (error) => `${error.status} ${error.message}`)",
        OPERATOR_ACTION_PATH,
    )
    assert refused == "403 This needs the operator role; victor has the viewer role."
