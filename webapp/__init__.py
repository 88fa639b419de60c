"""The Flask web application (application factory)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from taskcore.history import make_engine


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides settings (tests use it)."""
    app = Flask(__name__)
    app.config.from_prefixed_env("WEBAPP")
    if config:
        app.config.update(config)

    from .tasks import app as task_app

    # TASKCORE_* keys in the Flask config (e.g. TASKCORE_BROKER_URL) override the environment.
    overrides = {
        key.removeprefix("TASKCORE_").lower(): value
        for key, value in app.config.items()
        if key.startswith("TASKCORE_")
    }
    if overrides:
        task_app.configure(**overrides)
    app.extensions["taskcore"] = task_app
    app.extensions["taskcore_history"] = make_engine(app.config.get("DATABASE_URL"))

    from .api import api

    app.register_blueprint(api)
    return app
