"""Uploading a question paper in headless Chromium with a real worker: the progress bar
walks through the steps to 100 % without a reload, and the PDF downloads.

``SCREENSHOT_DIR=webapp/static/screenshots`` refreshes the README's
``document-progress.png`` and ``document-done.png``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from ..webapp_helpers import add_user, close_web_app, make_web_app
from .test_login import sign_in

pytest_plugins = ["tests.webapp_fixtures"]

PAPER = """# Year 9 science revision

Answer every question in full sentences.

1. What is 12 times 7?
2. Define photosynthesis.
3. What is osmosis?
4. Explain why metals conduct electricity.
5. What is (18 + 6) / 4?
6. Describe the water cycle and the role of evaporation.
"""


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def browser_app(database_url: str, task_env: dict[str, str], storage_dir: Path) -> Iterator[Flask]:
    """The web app on this test's vhost, Redis namespace and schema; ada signs in."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings, STORAGE_DIR=str(storage_dir))
    add_user(app, "ada")
    yield app
    close_web_app(app)


def test_the_progress_bar_reaches_100_without_a_reload_and_the_pdf_downloads(
    page: Page,
    start_webapp_worker: Any,
    storage_dir: Path,
    tmp_path: Path,
    screenshot_dir: Path,
) -> None:
    # Slow enough (0.6 s per answer) to watch the bar move and catch it half-way.
    env = {"WEBAPP_STORAGE_DIR": str(storage_dir), "WEBAPP_DOCUMENTS_STEP_DELAY": "0.6"}
    start_webapp_worker("documents", env=env)
    page.goto("/login?next=/documents")
    sign_in(page, "ada")
    expect(page.get_by_role("heading", name="Documents", exact=True)).to_be_visible()
    paper = tmp_path / "science revision.md"
    paper.write_text(PAPER)
    page.get_by_label("File").set_input_files(paper)
    page.get_by_role("button", name="Upload and process").click()
    expect(page.get_by_role("heading", name="science revision.md")).to_be_visible()

    page.wait_for_load_state("load")  # the page's own load event, before listening for more
    document_url = page.url
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    bar = page.locator("#document-bar")
    answer_step = page.locator('.doc-step[data-step="answer"]')
    # Mid-way: answering, some of the six done, the bar part full.
    expect(answer_step).to_have_class("doc-step doc-step-active", timeout=15_000)
    midway = re.compile(r"^[2-5] of 6$")  # polled every 0.6 s: any reading half-way
    expect(answer_step.locator(".doc-step-detail")).to_have_text(midway, timeout=10_000)
    expect(page.locator("#document-message")).to_contain_text("of 6")
    value = float(bar.get_attribute("value") or 0)
    assert 0 < value < 100, value
    page.screenshot(path=str(screenshot_dir / "document-progress.png"), full_page=True)

    expect(page.locator("#document-status .badge")).to_have_text("Done", timeout=15_000)
    expect(bar).to_have_attribute("value", "100")
    expect(page.locator("#document-percent")).to_have_text("100 %")
    for step in ("parse", "answer", "typeset"):
        expect(page.locator(f'.doc-step[data-step="{step}"]')).to_have_class(
            "doc-step doc-step-done"
        )
    expect(page.locator("#document-answers")).to_contain_text("12 * 7 = 84")
    expect(page.locator("#document-answers")).to_contain_text("(18 + 6) / 4 = 6")
    assert page.url == document_url and loads == [], "the page updated itself without reloading"

    download_link = page.get_by_role("link", name="Download the PDF")
    expect(download_link).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "document-done.png"), full_page=True)
    with page.expect_download() as info:
        download_link.click()
    download = info.value
    assert download.suggested_filename == "science_revision-answers.pdf"
    saved = tmp_path / "answers.pdf"
    download.save_as(saved)
    reader = PdfReader(io.BytesIO(saved.read_bytes()))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    page.goto("/documents")
    expect(page.locator("#document-list")).to_contain_text("science revision.md")
    page.screenshot(path=str(screenshot_dir / "document-list.png"), full_page=True)

    # A paper without questions: the page says which step failed and offers a retry.
    notes = tmp_path / "notes.txt"
    notes.write_text("Bring a calculator.\nNo questions here.\n")
    page.get_by_label("File").set_input_files(notes)
    page.get_by_role("button", name="Upload and process").click()
    expect(page.locator("#document-status .badge")).to_have_text("Failed", timeout=15_000)
    expect(page.locator("#document-message")).to_contain_text(
        "Failed at “Find the questions”: No questions found"
    )
    expect(page.locator('.doc-step[data-step="parse"]')).to_have_class("doc-step doc-step-failed")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "document-failed.png"), full_page=True)
    for expected in (
        "Answers: science revision.md",
        "Q1. What is 12 times 7?",
        "12 * 7 = 84",
        "Q3. What is osmosis?",
        "Osmosis is the movement of water",
        "Q6. Describe the water cycle and the role of evaporation.",
        "Page 1 of",
    ):
        assert expected in text, (expected, text)
