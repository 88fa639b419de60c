"""Workflows in the console, in headless Chromium: real chains and a chord run by real
workers, recorded by a real recorder, followed from the list to a step and back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from taskcore import TaskFailed, chain, chord, group
from taskcore.history import write_events
from taskcore.operations import Operations
from taskcore.workflows import workflow_event

from ..webapp_helpers import close_web_app, make_console_app, wait_until
from .test_login import sign_in

W = "tests.apps.workflows."
#: A name as long as a real one can get, to see that a page still fits.
LONG_NAME = "webapp.reports.tasks.export_the_search_results_of_every_agency_as_one_csv_file"


@pytest.fixture
def browser_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The console on this test's vhost, Redis namespace and PostgreSQL schema."""
    app = make_console_app(database_url, task_env, olivia="operator")
    yield app
    close_web_app(app)


@pytest.fixture
def running(browser_app: Flask, start_command: Any, database_url: str) -> Any:
    """A recorder writing this test's history and a worker of the web app's tasks."""
    recorder = start_command(
        "--loglevel", "info", "recorder", "-A", "webapp.tasks:app", "--flush-interval", "0.1",
        env={"DATABASE_URL": database_url},
    )  # fmt: skip
    recorder.wait_for_output("recorder consuming")  # its queue exists: no event is missed
    worker = start_command("--loglevel", "info", "worker", "-A", "webapp.tasks:app")
    worker.wait_for_output("consuming")
    return browser_app.extensions["taskcore"]


def ops_of(app: Flask) -> Operations:
    return app.extensions["taskcore_ops"]


def settled(app: Flask, workflow_id: str) -> dict[str, Any]:
    """The workflow once the history has every one of its tasks finished."""
    return wait_until(
        lambda: (w := ops_of(app).workflow(workflow_id)) and w["done"] == w["total"] and w,
        timeout=20,
        what=f"workflow {workflow_id} finished in the history",
    )


def signed_in(page: Page) -> Page:
    page.goto("/login")
    sign_in(page, "olivia")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def fits_the_window(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_chain_reaches_success_live_and_links_to_its_steps(
    page: Page, browser_app: Flask, running: Any, screenshot_dir: Path
) -> None:
    wait_for = running.tasks["webapp.tasks.wait_for"]
    handle = chain(wait_for.s(1.5), wait_for.s(), wait_for.s()).apply_async()
    short = handle.workflow_id[:8]
    wait_until(lambda: ops_of(browser_app).workflow(handle.workflow_id), what="recorded")
    signed_in(page)
    page.get_by_role("link", name="Workflows").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    row = page.locator("table.workflows tbody tr").filter(has_text=short)
    expect(row).to_contain_text("chain")
    expect(row).to_contain_text("webapp.tasks.wait_for")
    row.get_by_role("link", name=short).click()

    expect(page.get_by_role("heading", name=f"Chain {short}")).to_be_visible()
    workflow_url = page.url
    assert page.locator("#workflow-state .badge").inner_text() in ("PENDING", "STARTED")
    page.wait_for_load_state("load")  # the page's own load event, before listening for more
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    expect(page.locator("#workflow-position")).to_have_text(re.compile(r"step [123] of 3"))
    page.screenshot(path=str(screenshot_dir / "workflow-chain-running.png"), full_page=True)
    expect(page.locator("#workflow-state .badge")).to_have_text("SUCCESS", timeout=20_000)
    badges = page.locator("#workflow-members tbody .badge")
    expect(badges).to_have_text(["SUCCESS"] * 3)
    expect(page.locator("#workflow-done")).to_have_text("3 / 3")
    expect(page.locator("#workflow-position")).to_have_text("all 3 steps done")
    assert page.locator("#workflow-progress").get_attribute("value") == "3"
    assert page.url == workflow_url and loads == [], "the page updated itself without reloading"
    page.screenshot(path=str(screenshot_dir / "workflow-chain.png"), full_page=True)

    second = ops_of(browser_app).workflow(handle.workflow_id)["members"][1]["id"]
    page.locator("#workflow-members tbody tr").nth(1).get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/tasks/{second}$"))
    part_of = page.locator("#task-workflow")
    expect(part_of).to_have_text(f"Step 2 of 3 of chain {short}")
    expect(page.locator("#task-state .badge")).to_have_text("SUCCESS")
    page.screenshot(path=str(screenshot_dir / "workflow-step-task.png"), full_page=True)
    part_of.get_by_role("link").click()
    expect(page).to_have_url(workflow_url)
    expect(page.get_by_role("heading", name=f"Chain {short}")).to_be_visible()


def test_failed_chains_and_chords_read_at_a_glance(
    page: Page,
    browser_app: Flask,
    running: Any,
    app_from: Any,
    start_worker: Any,
    screenshot_dir: Path,
) -> None:
    flow = app_from("workflows")
    start_worker("workflows", "-Q", "flow", "--concurrency", "4")
    add, refuse, tally = (flow.tasks[W + name] for name in ("add", "refuse", "tally"))
    failed = chain(add.s(1, 1), refuse.s(), add.s(1)).apply_async()
    with pytest.raises(TaskFailed):
        failed.get(timeout=15)
    joined = chord(group(add.s(i, 1) for i in range(4)), tally.s()).apply_async()
    assert joined.get(timeout=15) == 10
    settled(browser_app, failed.workflow_id)
    settled(browser_app, joined.workflow_id)
    members = [{"id": f"long-{i}", "task": LONG_NAME, "queue": "reports"} for i in range(3)]
    write_events(
        ops_of(browser_app).engine,
        [{**workflow_event("f" * 32, "group", members), "at": time.time()}],
    )
    signed_in(page)

    page.goto("/workflows")
    rows = page.locator("table.workflows tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator(".badge")).to_have_text(["PENDING", "SUCCESS", "FAILURE"])
    expect(rows.nth(2)).to_contain_text(f"{W}add → {W}refuse")
    assert fits_the_window(page), "a long task name widens the list past the window"
    every_section = "(n => n.scrollWidth <= n.clientWidth)(document.querySelector('.nav'))"
    assert page.evaluate(every_section), "the top bar hides a section at 1280 px"
    page.screenshot(path=str(screenshot_dir / "workflows.png"), full_page=True)

    page.goto(f"/workflows/{failed.workflow_id}")
    expect(page.locator("#workflow-state .badge")).to_have_text("FAILURE")
    expect(page.locator("#workflow-position")).to_have_text("stopped at step 2 of 3")
    steps = page.locator("#workflow-members tbody tr")
    expect(steps.nth(1)).to_contain_text("refusing 2 on purpose")
    expect(steps.nth(2)).to_contain_text("ChainStopped")
    assert fits_the_window(page), "an error message widens the page past the window"
    table = page.locator("#workflow-members").bounding_box()
    card = page.locator("#workflow-members").locator("xpath=ancestor::section").bounding_box()
    assert table["x"] + table["width"] <= card["x"] + card["width"], "the steps overflow"
    page.screenshot(path=str(screenshot_dir / "workflow-chain-failed.png"), full_page=True)

    page.goto(f"/workflows/{joined.workflow_id}")
    expect(page.get_by_role("heading", name=f"Chord {joined.workflow_id[:8]}")).to_be_visible()
    expect(page.locator("#workflow-members tbody tr")).to_have_count(4)
    callback = page.locator("#workflow-callback tbody tr")
    expect(callback).to_contain_text(f"{W}tally")
    expect(callback.locator(".badge")).to_have_text("SUCCESS")
    expect(page.locator("#workflow-done")).to_have_text("5 / 5")
    page.screenshot(path=str(screenshot_dir / "workflow-chord.png"), full_page=True)

    page.goto(f"/workflows/{'f' * 32}")
    assert fits_the_window(page), "a long task name widens the workflow page past the window"
    page.screenshot(path=str(screenshot_dir / "workflow-long-names.png"), full_page=True)
