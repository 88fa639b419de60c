"""Contract reports: a workload of the web app.

Exports (CSV, XLSX) of a filtered contracts table with progress, aggregates cached in
Redis, a background search with paged results, and a daily clean-up of old exports.
"""

from __future__ import annotations

from flask import Blueprint

reports = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")

from . import commands, views  # noqa: E402, F401  (registers the routes and `flask reports`)
