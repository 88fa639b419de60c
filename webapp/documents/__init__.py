"""Documents: a workload of the web app (models, views, templates and tasks together)."""

from __future__ import annotations

from flask import Blueprint

documents = Blueprint("documents", __name__, url_prefix="/documents", template_folder="templates")

from . import views  # noqa: E402, F401  (registers the routes on the blueprint)
