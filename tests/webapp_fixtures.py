"""Fixtures for web app tests: an app on this test's PostgreSQL schema, users and tokens.

A test module loads them with ``pytest_plugins = ["tests.webapp_fixtures"]``; the plain
helpers live in ``tests.webapp_helpers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from webapp.auth.models import User

from .webapp_helpers import add_token, add_user, close_web_app, make_web_app


@pytest.fixture
def web_app(database_url: str) -> Iterator[Flask]:
    """The Flask app with CSRF checks on, on a PostgreSQL schema of this test's own."""
    app = make_web_app(database_url)
    yield app
    close_web_app(app)


@pytest.fixture
def web_client(web_app: Flask) -> FlaskClient:
    """A test client of ``web_app``."""
    return web_app.test_client()


@pytest.fixture
def create_user(web_app: Flask) -> Callable[..., User]:
    """``create_user(name, role="viewer", password=PASSWORD)``: a user of ``web_app``."""
    return lambda *args, **kwargs: add_user(web_app, *args, **kwargs)


@pytest.fixture
def create_token(web_app: Flask) -> Callable[..., str]:
    """``create_token(name, role="viewer")``: the plain bearer token of a new ApiToken."""
    return lambda *args, **kwargs: add_token(web_app, *args, **kwargs)


@pytest.fixture
def start_webapp_worker(start_command, database_url: str) -> Callable[..., Any]:
    """``start_webapp_worker("grading", ...)``: a real `taskcore worker -A webapp.tasks:app`
    on those queues, this test's vhost and Redis prefix and this test's database; returns
    once it consumes. ``env=`` adds environment variables, ``options=`` worker options."""

    def start(
        *queues: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
    ) -> Any:
        worker = start_command(
            "--loglevel",
            "info",
            "worker",
            "-A",
            "webapp.tasks:app",
            "-Q",
            ",".join(queues),
            *options,
            env={"DATABASE_URL": database_url, **(env or {})},
        )
        worker.wait_for_output("consuming")
        return worker

    return start
