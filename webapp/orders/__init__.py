"""Orders and their notifications: a workload of the web app."""

from __future__ import annotations

from flask import Blueprint

orders = Blueprint("orders", __name__, url_prefix="/orders", template_folder="templates")

from . import commands, views  # noqa: E402, F401  (registers the routes and commands)
