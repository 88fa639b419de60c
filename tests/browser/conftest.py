"""A live server of the web app and a headless Chromium page pointed at it.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test`` through
``scripts/ensure_debian_package.sh``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright import sync_api as playwright_sync
from werkzeug.serving import make_server

from webapp.auth import requires

from ..webapp_helpers import close_web_app, make_web_app

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
OPERATOR_ONLY_PATH = "/_test/operator-only"
OPERATOR_ACTION_PATH = "/_test/act"


@pytest.fixture
def browser_app(database_url: str) -> Iterator[Flask]:
    """The web app (CSRF on) with a test-only page and JSON action for operators only."""
    app = make_web_app(database_url)

    @requires("operator")
    def operator_only() -> str:
        return "operators only"

    @requires("operator")
    def operator_action() -> dict[str, bool]:
        return {"done": True}

    app.add_url_rule(OPERATOR_ONLY_PATH, "test_operator_only", operator_only)
    app.add_url_rule(OPERATOR_ACTION_PATH, "test_act", operator_action, methods=["POST"])
    yield app
    close_web_app(app)


@pytest.fixture
def live_server(browser_app: Flask) -> Iterator[str]:
    """``browser_app`` served on 127.0.0.1 on a free port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, browser_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_sync.Browser]:
    """Headless Debian Chromium, shared by one module's tests.

    While Playwright's sync API is active it keeps an asyncio loop running in the main
    thread, so ``asyncio.run`` (e.g. a Probe) fails there: hence module scope, not
    session, and helpers that need asyncio in a browser test must use another thread.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test' (scripts/ensure_debian_package.sh)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: playwright_sync.Browser, live_server: str) -> Iterator[playwright_sync.Page]:
    """A fresh browser context and page; relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$SCREENSHOT_DIR`` if set (e.g. /tmp/screens), else tmp_path."""
    directory = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
