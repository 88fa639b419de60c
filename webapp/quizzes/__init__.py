"""Quizzes: a workload of the web app (models, views, templates and tasks together).

``flask --app webapp quizzes seed|statistics|redrive`` are this blueprint's commands.
"""

from __future__ import annotations

from flask import Blueprint

quizzes = Blueprint("quizzes", __name__, url_prefix="/quizzes", template_folder="templates")
quizzes.cli.help = "Quizzes: seed quizzes and submissions, compute statistics, re-drive grading."

from . import commands, views  # noqa: E402, F401  (registers the routes and commands)
