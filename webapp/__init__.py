"""The Flask web application (application factory)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from taskcore.history import make_engine
from taskcore.operations import Operations

from .db import default_database_url, init_db
from .metrics import init_metrics
from .security import (
    add_security_headers,
    check_secret_key,
    configure_cookies,
    init_csrf,
    reject_nul_characters,
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides settings (tests use it)."""
    app = Flask(__name__)
    app.config.from_prefixed_env("WEBAPP")
    if config:
        app.config.update(config)
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = default_database_url(app)
    check_secret_key(app)
    configure_cookies(app)

    from .tasks import app as task_app

    # TASKCORE_* keys in the Flask config (e.g. TASKCORE_BROKER_URL) override the environment.
    overrides = {
        key.removeprefix("TASKCORE_").lower(): value
        for key, value in app.config.items()
        if key.startswith("TASKCORE_")
    }
    # Always: a factory call without overrides undoes an earlier call's.
    task_app.configure(**overrides)
    app.extensions["taskcore"] = task_app
    # The console and the API operate the system only through this (the CLI does too).
    app.extensions["taskcore_ops"] = Operations(
        task_app, make_engine(app.config.get("DATABASE_URL"))
    )
    init_metrics(app)  # first: its request timer starts before the other hooks

    from .api import api

    app.register_blueprint(api)
    _init_console(app)
    return app


def _init_console(app: Flask) -> None:
    """Database, sign-in, CSRF, error pages, the layout and the auth blueprint."""
    from .auth import auth, login_manager
    from .errors import register_error_handlers
    from .layout import init_layout

    init_db(app)
    login_manager.init_app(app)
    init_csrf(app)
    register_error_handlers(app)
    init_layout(app)
    app.after_request(add_security_headers)
    app.before_request(reject_nul_characters)
    app.register_blueprint(auth)
    from .console import console

    app.register_blueprint(console)
    _init_workloads(app)


def _init_workloads(app: Flask) -> None:
    """The product's own workloads: each a blueprint with its models, pages and tasks."""
    from .documents import documents
    from .orders import orders
    from .quizzes import quizzes
    from .reports import reports

    for blueprint in (quizzes, documents, orders, reports):
        app.register_blueprint(blueprint)
    # No tables are made here: `flask --app webapp db upgrade` migrates (webapp/db.py).
