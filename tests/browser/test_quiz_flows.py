"""Taking a quiz in headless Chromium with a real worker: the result page turns from the
processing indicator to the score by itself, and the statistics page draws its chart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from webapp.auth.models import User
from webapp.db import db
from webapp.quizzes.models import Submission

from ..webapp_helpers import add_user, close_web_app, make_web_app
from .test_login import sign_in

pytest_plugins = ["tests.webapp_fixtures"]


@pytest.fixture
def browser_app(database_url: str, task_env: dict[str, str]) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and schema: the seeded quizzes, 400
    synthetic graded submissions of python-basics (for the chart) and a learner, ada."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings)
    add_user(app, "ada")
    runner = app.test_cli_runner()
    seeded = runner.invoke(
        args=["quizzes", "seed", "--submissions", "400", "--quiz", "python-basics"]
    )
    assert seeded.exit_code == 0, seeded.output
    yield app
    close_web_app(app)


def answer_python_basics(page: Page) -> None:
    """Three right (one typed with odd case and punctuation), two wrong."""
    page.locator("#question-1").get_by_label("3", exact=True).check()
    page.locator("#question-2 input").fill("  DEF! ")
    page.locator("#question-3").get_by_label("list", exact=True).check()
    page.locator("#question-4 input").fill("Three.")
    page.locator("#question-5").get_by_label("0", exact=True).check()


def test_a_submission_turns_into_a_score_without_a_reload(
    page: Page, browser_app: Flask, start_webapp_worker: Any, screenshot_dir: Path
) -> None:
    page.goto("/login?next=/quizzes")
    sign_in(page, "ada")
    expect(page.get_by_role("heading", name="Quizzes")).to_be_visible()
    page.get_by_role("link", name="Python basics").click()

    # An incomplete form comes back with a message and the answers given so far.
    page.locator("#question-1").get_by_label("3", exact=True).check()
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator("#form-error")).to_contain_text("4 questions still need an answer")
    expect(page.locator("#question-1").get_by_label("3", exact=True)).to_be_checked()
    page.screenshot(path=str(screenshot_dir / "quiz-take.png"), full_page=True)

    answer_python_basics(page)
    page.get_by_role("button", name="Submit answers").dblclick()  # a double click
    expect(page).to_have_url(re.compile(r"/quizzes/submissions/\d+$"))
    result_url = page.url
    pending = page.locator("#quiz-result .quiz-pending")
    expect(pending).to_contain_text("Grading your answers")  # no worker yet
    page.screenshot(path=str(screenshot_dir / "quiz-pending.png"), full_page=True)

    page.evaluate("window.__quizMarker = 'still here'")
    page.wait_for_load_state("load")  # the page's own load event, before listening for more
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    page.on("framenavigated", lambda frame: loads.append(frame.url))
    start_webapp_worker("grading", "statistics", env={"QUIZZES_STATS_WINDOW": "0.5"})

    expect(page.locator("#quiz-score")).to_have_text("3/5", timeout=15_000)
    expect(page.locator("#quiz-result")).to_have_attribute("data-quiz-state", "graded")
    assert page.evaluate("window.__quizMarker") == "still here", "the page was reloaded"
    assert page.url == result_url and loads == [], "the page updated itself without navigating"
    marks = page.locator(".feedback > li")
    expect(marks).to_have_count(5)
    expect(marks.nth(2)).to_have_class("wrong")
    expect(marks.nth(2)).to_contain_text("tuple")
    expect(marks.nth(1)).to_have_class("right")
    page.screenshot(path=str(screenshot_dir / "quiz-result.png"), full_page=True)

    with browser_app.app_context():
        mine = db.session.scalars(
            sa.select(Submission.grading_runs)
            .join(User, User.id == Submission.user_id)
            .where(User.name == "ada", Submission.status != "started")
        ).all()
    assert mine == [1]  # the double click made one submission, graded once

    page.get_by_role("link", name="Quiz statistics").click()
    expect(page.get_by_role("heading", name="Statistics: Python basics")).to_be_visible()
    chart = page.locator("svg.quiz-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar-score")).to_have_count(10)
    expect(page.locator("#stat-graded")).to_have_text("401", timeout=10_000)  # refreshes itself
    expect(page.locator("#hardest li")).to_have_count(3)
    page.screenshot(path=str(screenshot_dir / "quiz-statistics.png"), full_page=True)

    page.goto("/quizzes")
    expect(page.locator("table")).to_contain_text("3/5 (60%)")
    page.screenshot(path=str(screenshot_dir / "quiz-list.png"), full_page=True)
    page.goto("/quizzes/no-such-quiz")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
