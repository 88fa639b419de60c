"""Operating a live system from the console in headless Chromium, with a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from ..webapp_helpers import close_web_app, make_console_app
from .test_login import sign_in


@pytest.fixture
def browser_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The console on this test's vhost, Redis namespace and PostgreSQL schema."""
    app = make_console_app(database_url, task_env, olivia="operator", victor="viewer")
    yield app
    close_web_app(app)


@pytest.fixture
def worker(start_command: Any) -> Any:
    """A real `taskcore worker` on the web app's tasks."""
    process = start_command("--loglevel", "info", "worker", "-A", "webapp.tasks:app")
    process.wait_for_output("consuming")
    return process


def send_from_the_tasks_page(page: Page, task: str, args: str) -> None:
    page.goto("/tasks")
    form = page.locator("details.send-task")
    form.locator("summary").click()
    form.get_by_label("Task").select_option(task)
    form.get_by_label("Arguments (JSON list)").fill(args)
    form.get_by_role("button", name="Send").click()


def test_a_sent_task_reaches_success_without_a_reload(
    page: Page, worker: Any, screenshot_dir: Path
) -> None:
    page.goto("/login")
    sign_in(page, "olivia")
    send_from_the_tasks_page(page, "webapp.tasks.wait_for", "[1.5]")
    expect(page.locator(".flash-success")).to_contain_text("Queued webapp.tasks.wait_for")
    task_url = page.url
    page.wait_for_load_state("load")  # the task page's own load, which can lag its content
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    state = page.locator("#task-state .badge")
    expect(state).to_have_text("SUCCESS", timeout=15_000)
    expect(page.locator("#task-result")).to_have_text("1.5")
    assert page.url == task_url and loads == [], "the page updated itself without reloading"
    page.screenshot(path=str(screenshot_dir / "task.png"), full_page=True)


def test_operator_terminates_a_long_task(page: Page, worker: Any) -> None:
    page.goto("/login")
    sign_in(page, "olivia")
    send_from_the_tasks_page(page, "webapp.tasks.wait_for", "[60]")
    expect(page.locator("#task-state .badge")).to_have_text("STARTED", timeout=10_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Terminate").click()
    expect(page.locator(".flash-success")).to_contain_text("revoked (terminate)")
    expect(page.locator("#task-state .badge")).to_have_text("REVOKED", timeout=10_000)


def test_operator_replays_a_dead_letter(
    page: Page, browser_app: Flask, worker: Any, screenshot_dir: Path
) -> None:
    task_app = browser_app.extensions["taskcore"]
    lost = task_app.send_task("webapp.tasks.renamed_long_ago", [42])  # dead: unknown task
    ops = browser_app.extensions["taskcore_ops"]
    page.goto("/login")
    sign_in(page, "olivia")
    page.goto("/queues/default/dead")
    for _ in range(50):  # the worker dead-letters it within moments
        if ops.dead_letters("default"):
            break
        page.wait_for_timeout(100)
    page.reload()
    row = page.locator("tr", has_text=lost.id)
    expect(row).to_contain_text("unknown-task")
    page.screenshot(path=str(screenshot_dir / "dead_letters.png"), full_page=True)
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Replay selected").click()
    expect(page.locator(".flash-success")).to_contain_text("Replayed 1 dead letter(s) to default")


def test_operator_pauses_a_schedule_and_a_viewer_is_refused(
    page: Page, browser: Any, live_server: str
) -> None:
    page.goto("/login")
    sign_in(page, "olivia")
    page.goto("/schedules")
    row = page.locator("tr", has_text="ping-every-minute")
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator(".flash-success")).to_contain_text("ping-every-minute paused")
    expect(row.locator(".badge")).to_have_text("paused")

    viewer = browser.new_context(base_url=live_server).new_page()
    viewer.goto("/login")
    sign_in(viewer, "victor")
    viewer.goto("/schedules")
    expect(viewer.locator("tr", has_text="ping-every-minute").locator(".badge")).to_have_text(
        "paused"
    )
    expect(viewer.get_by_role("button", name="Resume")).to_have_count(0)
    status = viewer.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const body = new URLSearchParams({csrf_token: token});
            const answer = await fetch("/schedules/ping-every-minute/resume",
                                       {method: "POST", body});
            return answer.status;
        }"""
    )
    assert status == 403
    viewer.context.close()


def test_overview_shows_the_live_system(
    page: Page,
    browser_app: Flask,
    worker: Any,
    start_command: Any,
    database_url: str,
    screenshot_dir: Path,
) -> None:
    recorder = start_command(
        "--loglevel", "info", "recorder", "-A", "webapp.tasks:app",
        env={"DATABASE_URL": database_url},
    )  # fmt: skip
    recorder.wait_for_output("recorder consuming")  # its queue exists: no event is missed
    task_app = browser_app.extensions["taskcore"]
    handles = task_app.tasks["webapp.tasks.add"].map([(i, i) for i in range(20)])
    assert handles[-1].get(timeout=15) == 38
    page.goto("/login")
    sign_in(page, "olivia")
    page.goto("/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#stat-workers")).to_have_text("1", timeout=10_000)
    expect(page.locator("#stat-finished")).to_have_text("20", timeout=15_000)  # via the recorder
    assert recorder.proc.poll() is None
    page.screenshot(path=str(screenshot_dir / "overview.png"), full_page=True)
    for path in ("/tasks", "/queues", "/workers", "/schedules", "/rate-limits", "/performance"):
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        page.screenshot(path=str(screenshot_dir / f"{path.strip('/')}.png"), full_page=True)
