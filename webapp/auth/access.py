"""Who is asking, and may they: the one access check every page and API endpoint uses.

A request is made either by a person signed in through ``/login`` (a session cookie,
Flask-Login) or by a machine sending ``Authorization: Bearer <token>``. When a Bearer
header is present it alone decides (a session cookie beside it is ignored), which is also
why such requests can be exempt from CSRF checks: a browser never adds one on its own.
Other schemes (``Basic`` from a proxy in front of the console) are left to the proxy.

Use in views::

    @console.get("/queues")
    @requires("viewer")
    def queues(): ...

    @console.post("/queues/<name>/purge")
    @requires("operator")
    def purge(name):
        ...
        audit("queue.purge", name, detail=f"{count} messages")
"""

from __future__ import annotations

import functools
import getpass
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import abort, g, has_request_context, redirect, request, url_for
from flask_login import LoginManager, current_user

from ..db import db, utcnow
from ..errors import json_error, wants_json
from .models import ApiToken, AuditEntry, Role, User, check_role

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("webapp.audit")
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in to see that page."
login_manager.login_message_category = "info"

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_UNSET = object()


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


@dataclass(frozen=True)
class Identity:
    """The person or machine behind the current request."""

    name: str
    role: Role
    kind: Literal["user", "token"]

    @property
    def actor(self) -> str:
        """How the audit log names it: ``alice`` for a user, ``token:ci`` for a token."""
        return self.name if self.kind == "user" else f"token:{self.name}"

    @property
    def is_operator(self) -> bool:
        """Whether it may act (revoke, purge, replay, ...), not only read."""
        return self.role == "operator"

    def allows(self, role: Role) -> bool:
        """Whether this identity may do what needs ``role``."""
        return role == "viewer" or self.is_operator


def current_identity() -> Identity | None:
    """The signed-in user or the bearer token of this request; None if neither (or invalid).

    Outside a request (a CLI command) it is None. The answer is computed once per request.
    """
    if not has_request_context():
        return None
    identity = g.get("_webapp_identity", _UNSET)
    if identity is _UNSET:
        identity = _identify()
        g._webapp_identity = identity
    return identity  # type: ignore[return-value]


def bearer_header_present() -> bool:
    """Whether this request authenticates with ``Authorization: Bearer`` (not a cookie)."""
    return _bearer_token() is not None


def _bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header ("" if empty), None without one."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _identify() -> Identity | None:
    token = _bearer_token()
    if token is not None:
        return _from_bearer(token)
    if current_user.is_authenticated:
        return Identity(name=current_user.name, role=current_user.role, kind="user")
    return None


def _from_bearer(token: str) -> Identity | None:
    if not token:
        g._webapp_auth_problem = "send the token as 'Authorization: Bearer <token>'"
        return None
    row = ApiToken.find(token)
    if row is None:
        g._webapp_auth_problem = "the bearer token is invalid or was revoked"
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        db.session.execute(
            sa.update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
        )
        db.session.commit()
    return Identity(name=row.name, role=row.role, kind="token")  # type: ignore[arg-type]


def requires(role: Role) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Let a view run only for identities with ``role``.

    ``"viewer"`` admits anyone signed in or holding a valid token; ``"operator"`` only
    operators. Without an identity, a browser is sent to ``/login?next=...`` and an API
    call gets a 401 JSON error; an identity without the role gets a 403 (page or JSON).
    """
    check_role(role)

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> Any:
            identity = current_identity()
            if identity is None:
                return _unauthenticated()
            if not identity.allows(role):
                abort(
                    403,
                    description=(
                        f"This needs the {role} role; {identity.name} has the {identity.role} role."
                    ),
                )
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _unauthenticated() -> Any:
    if wants_json():
        problem = g.get(
            "_webapp_auth_problem",
            "authentication required: send 'Authorization: Bearer <token>'",
        )
        response = json_error(401, problem)
        response.headers["WWW-Authenticate"] = 'Bearer realm="taskcore"'
        return response
    next_url = request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else None
    return redirect(url_for("auth.login", next=next_url))


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (no scheme, no host), else None."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def current_actor() -> str:
    """Who the audit log names for what happens now: the identity, or ``cli:<user>``."""
    identity = current_identity()
    if identity is not None:
        return identity.actor
    if has_request_context():
        return "anonymous"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def audit(action: str, target: str, detail: str = "") -> AuditEntry:
    """Record that the current actor did ``action`` to ``target``; commits the session.

    ``action`` is a dotted verb such as ``queue.purge``; ``target`` what it was done to;
    ``detail`` free text. Never pass a secret: the log is shown on ``/audit``.
    """
    entry = AuditEntry(actor=current_actor(), action=action, target=target[:255], detail=detail)
    db.session.add(entry)
    db.session.commit()
    log.info("audit: %s %s %s %s", entry.actor, action, target, detail)
    return entry
