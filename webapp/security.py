"""The secret key, cookie settings, CSRF checks and security headers of every response."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Flask, Response, abort, request
from flask_wtf.csrf import CSRFProtect

from .auth.access import bearer_header_present

csrf = CSRFProtect()

MIN_SECRET_KEY_LENGTH = 16
#: The largest request body read before a view decides (``FORM_MAX_CONTENT_LENGTH``):
#: forms are small, and the CSRF and NUL checks read a form before any view runs. An
#: upload view raises it for its own request (documents, the API).
FORM_MAX_CONTENT_LENGTH = 1024 * 1024
SESSION_LIFETIME = timedelta(hours=12)
FLASK_DEFAULT_LIFETIME = timedelta(days=31)
# No inline script or style anywhere: pages load console.js and console.css from /static.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class MissingSecretKey(RuntimeError):
    """The app was started for real without ``WEBAPP_SECRET_KEY``."""


def check_secret_key(app: Flask) -> None:
    """Refuse to run without a strong ``SECRET_KEY``; tests (TESTING) get a random one."""
    key = app.config.get("SECRET_KEY")
    if app.testing:
        if not key:
            app.config["SECRET_KEY"] = secrets.token_hex(32)
        return
    if not key:
        raise MissingSecretKey(
            "WEBAPP_SECRET_KEY is not set: set it to a long random value, e.g. "
            "export WEBAPP_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
            " (make run keeps one in instance/secret_key)"
        )
    if len(str(key)) < MIN_SECRET_KEY_LENGTH:
        raise MissingSecretKey(
            f"WEBAPP_SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} random "
            "characters (32 random bytes in hex is a good choice)"
        )


def configure_cookies(app: Flask) -> None:
    """HttpOnly, SameSite=Lax session cookies, Secure unless debugging, testing or
    ``WEBAPP_INSECURE_COOKIES=1`` (``make run`` serves plain HTTP on localhost).

    These are set whatever the config says (Flask's own defaults are weaker); sessions
    last 12 hours unless ``PERMANENT_SESSION_LIFETIME`` was configured.
    """
    insecure = app.debug or app.testing or str(app.config.get("INSECURE_COOKIES", "")) == "1"
    for prefix in ("SESSION", "REMEMBER"):
        app.config[f"{prefix}_COOKIE_HTTPONLY"] = True
        app.config[f"{prefix}_COOKIE_SAMESITE"] = "Lax"
        app.config[f"{prefix}_COOKIE_SECURE"] = not insecure
    if app.config.get("PERMANENT_SESSION_LIFETIME") == FLASK_DEFAULT_LIFETIME:
        app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME


def init_csrf(app: Flask) -> None:
    """CSRF checks on every form post made with the session cookie, and a bound on the
    body that reading the form for them may take in (``FORM_MAX_CONTENT_LENGTH``, 1 MiB).

    Requests that authenticate with an ``Authorization: Bearer`` header are exempt: a
    browser never sends that header by itself, so another site cannot forge such a
    request, and ``current_identity`` then ignores the session cookie altogether.
    """
    # Flask-WTF's own hook would check every request; ours skips bearer-token calls.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)

    @app.before_request
    def _limit_body() -> None:
        """Bound what reading the form may take in (413 past it): without this, anyone,
        signed in or not, could make the process read a body of any size into memory."""
        limit = app.config.get("FORM_MAX_CONTENT_LENGTH", FORM_MAX_CONTENT_LENGTH)
        configured = app.config.get("MAX_CONTENT_LENGTH")
        request.max_content_length = min(limit, configured) if configured else limit

    @app.before_request
    def _check_csrf() -> None:
        if app.config["WTF_CSRF_ENABLED"] and not bearer_header_present():
            csrf.protect(apply_exemptions=True)


def add_security_headers(response: Response) -> Response:
    """``after_request`` hook: CSP, nosniff, no framing, same-origin referrers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


NUL_MESSAGE = (
    "The request contains a NUL character (\\x00), which text cannot hold here: remove it."
)


def reject_nul_characters() -> None:
    """Refuse (400) a path, query string or form holding a NUL character.

    PostgreSQL text cannot store NUL, so such input would otherwise fail deep inside a
    view as a 500. Bodies a view reads under its own size limit (JSON for the API,
    multipart uploads) are left to the view: reading them here would bypass that limit.
    The API's schemas refuse NUL in the fields they store.
    """
    values = [request.path, *(v for _, vs in request.args.lists() for v in vs)]
    if request.mimetype == "application/x-www-form-urlencoded":
        values += [v for _, vs in request.form.lists() for v in vs]
    if any("\x00" in value for value in values):
        abort(400, description=NUL_MESSAGE)
