"""Helpers for web app tests: build and close an app, add users and tokens, sign in."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from taskcore.history import create_schema
from webapp import create_app
from webapp.auth.models import ApiToken, User
from webapp.db import db, upgrade_database

PASSWORD = "correct horse battery"
_CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*? value="([^"]+)"')


def make_web_app(database_url: str, **config: Any) -> Flask:
    """``create_app`` for tests: TESTING on, CSRF on, this test's PostgreSQL schema, migrated
    for the web app's tables as a deployment's ``flask db upgrade`` does (the history
    tables too with ``create_schema``, for the tests that read them)."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, **config})
    upgrade_database(app, history=False)
    return app


def close_web_app(app: Flask) -> None:
    """Close what ``make_web_app`` opened (database pools, broker connection)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    app.extensions["taskcore_ops"].engine.dispose()
    app.extensions["taskcore"].close()


def make_console_app(database_url: str, task_env: dict[str, str], **users: str) -> Flask:
    """The console on this test's vhost, Redis namespace and PostgreSQL schema (history
    tables included), with ``users`` (name=role) signed up."""
    settings = {key: value for key, value in task_env.items() if key.startswith("TASKCORE_")}
    app = make_web_app(database_url, **settings)
    create_schema(app.extensions["taskcore_ops"].engine)
    for name, role in users.items():
        add_user(app, name, role)
    return app


def add_user(app: Flask, name: str, role: str = "viewer", password: str = PASSWORD) -> User:
    """Store a user; returns it detached from the session."""
    with app.app_context():
        user = User(name=name, role=role)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


def add_token(app: Flask, name: str, role: str = "viewer") -> str:
    """Store a new API token; returns the plain bearer token."""
    with app.app_context():
        row, token = ApiToken.issue(name, role)
        db.session.add(row)
        db.session.commit()
        return token


def csrf_token_from(html: str) -> str:
    """The CSRF token of the first form in ``html``."""
    found = _CSRF_FIELD.search(html)
    if found is None:
        raise AssertionError("the page has no form with a CSRF token")
    return found.group(1)


def log_in(client: FlaskClient, name: str, password: str = PASSWORD, next_url: str = "") -> Any:
    """Sign in through the real form (CSRF token included); returns the POST's response."""
    page = client.get("/login")
    data = {"name": name, "password": password, "next": next_url}
    data["csrf_token"] = csrf_token_from(page.get_data(as_text=True))
    return client.post("/login", data=data)


def wait_until(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "", interval: float = 0.05
) -> Any:
    """Call ``check`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {what or check}")
        time.sleep(interval)
