"""Sign in, sign out, and the audit log page."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user

from ..db import db
from .access import audit, current_identity, requires, safe_next
from .commands import token_cli, user_cli
from .forms import LoginForm
from .models import AuditEntry, User

log = logging.getLogger(__name__)
auth = Blueprint("auth", __name__, cli_group=None)
auth.cli.add_command(user_cli)
auth.cli.add_command(token_cli)

AUDIT_PER_PAGE = 50
#: Pages past this are answered 404 before any query (their offset would not fit a bigint).
MAX_AUDIT_PAGE = 10**9


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form; on success, go to ``next`` (a path on this site) or ``/``."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    target = safe_next(form.next.data) or "/"
    identity = current_identity()
    if request.method == "GET" and identity is not None and identity.kind == "user":
        return redirect(target)
    error = None
    if form.validate_on_submit():
        name = form.name.data.strip()
        user = User.authenticate(name, form.password.data)
        if user is None:
            error = "Wrong name or password."
            log.info("failed sign-in from %s", request.remote_addr)
            # Name the target only if it is a real user: a mistyped password typed into
            # the name field must not end up in the log.
            exists = db.session.scalar(sa.select(User.id).where(User.name == name))
            audit("login.failed", name if exists else "(unknown name)")
        else:
            session.clear()  # nothing from before sign-in carries over
            login_user(user)
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
            g.pop("_webapp_identity", None)
            audit("login", user.name)
            return redirect(target)
    return render_template("auth/login.html", form=form, error=error)


@auth.post("/logout")
def logout() -> Any:
    """Sign out (a POST with the CSRF token, so that no other site can do it for you)."""
    identity = current_identity()
    if identity is not None and identity.kind == "user":
        audit("logout", identity.name)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@auth.get("/audit")
@requires("viewer")
def audit_log() -> Any:
    """Audit entries, newest first, 50 a page; ``?actor=`` and ``?action=`` filter."""
    actor = request.args.get("actor", "").strip()
    action = request.args.get("action", "").strip()
    query = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    wanted = request.args.get("page", type=int)
    if wanted is not None and wanted > MAX_AUDIT_PAGE:  # its OFFSET would overflow: a 500
        abort(404, description=f"The audit log has no page {wanted}.")
    page = db.paginate(query, per_page=AUDIT_PER_PAGE, max_per_page=AUDIT_PER_PAGE)
    return render_template("auth/audit.html", page=page, actor=actor, action=action)
