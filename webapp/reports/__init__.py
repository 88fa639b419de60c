"""Contract reports: a workload of the web app."""

from __future__ import annotations

from flask import Blueprint

reports = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")

from . import views  # noqa: E402, F401  (registers the routes on the blueprint)
