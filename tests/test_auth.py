"""Sign-in, roles, API tokens, CSRF, the audit log, the user/token commands, headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from webapp import create_app
from webapp.auth import audit, current_identity, requires
from webapp.auth.models import ApiToken, AuditEntry, User, hash_token
from webapp.db import db

from .webapp_helpers import PASSWORD, close_web_app, csrf_token_from, log_in, make_web_app

pytest_plugins = ["tests.webapp_fixtures"]  # web_app, web_client, create_user, create_token

JSON = {"Accept": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(web_app: Flask) -> Flask:
    """The app with two test-only routes: one for viewers, one for operators."""

    @requires("viewer")
    def look() -> Any:
        identity = current_identity()
        return {"name": identity.name, "role": identity.role, "kind": identity.kind}

    @requires("operator")
    def act() -> Any:
        audit("thing.act", "thing-1", detail="by the test")
        return {"done": True}

    web_app.add_url_rule("/_test/look", "test_look", look)
    web_app.add_url_rule("/_test/act", "test_act", act, methods=["GET", "POST"])
    return web_app


def audit_rows(app: Flask) -> list[AuditEntry]:
    with app.app_context():
        query = sa.select(AuditEntry).order_by(AuditEntry.id)
        return list(db.session.scalars(query))


# --- sign-in and sign-out ------------------------------------------------------------


def test_login_with_the_right_password_signs_in_and_goes_to_next(
    web_client: FlaskClient, create_user: Callable[..., User]
) -> None:
    create_user("alice", "operator")
    response = log_in(web_client, "alice", next_url="/audit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/audit"
    page = web_client.get("/audit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "alice" in html and "operator" in html
    assert PASSWORD not in html


def test_login_with_a_wrong_password_or_name_says_so_and_stays_out(
    web_client: FlaskClient, create_user: Callable[..., User], web_app: Flask
) -> None:
    create_user("alice")
    for name, password in (("alice", "not the password"), ("nobody", PASSWORD)):
        response = log_in(web_client, name, password)
        assert response.status_code == 200
        assert "Wrong name or password." in response.get_data(as_text=True)
        assert web_client.get("/audit").status_code == 302
    failed = [(e.action, e.target) for e in audit_rows(web_app)]
    # A wrong name is not written down: it might be a password typed in the wrong field.
    assert failed == [("login.failed", "alice"), ("login.failed", "(unknown name)")]


def test_login_refuses_an_empty_form_with_field_messages(web_client: FlaskClient) -> None:
    page = web_client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    response = web_client.post("/login", data={"csrf_token": token, "name": "", "password": ""})
    html = response.get_data(as_text=True)
    assert "Enter your name." in html and "Enter your password." in html


def test_login_never_redirects_to_another_site(
    web_app: Flask, create_user: Callable[..., User]
) -> None:
    create_user("alice")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = log_in(web_app.test_client(), "alice", next_url=target)
        assert response.headers["Location"] == "/"


def test_logout_signs_out_and_needs_a_post(
    web_client: FlaskClient, create_user: Callable[..., User], web_app: Flask
) -> None:
    create_user("alice")
    log_in(web_client, "alice")
    assert web_client.get("/audit").status_code == 200
    assert web_client.get("/logout").status_code == 405
    page = web_client.get("/audit").get_data(as_text=True)
    response = web_client.post("/logout", data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert web_client.get("/audit").status_code == 302
    assert "You are signed out." in web_client.get("/login").get_data(as_text=True)
    assert [e.action for e in audit_rows(web_app)] == ["login", "logout"]


def test_session_cookie_is_httponly_and_samesite_lax(
    web_client: FlaskClient, create_user: Callable[..., User]
) -> None:
    create_user("alice")
    response = log_in(web_client, "alice")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookie_is_secure_outside_debug_and_testing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBAPP_INSECURE_COOKIES", raising=False)
    config = {"SECRET_KEY": "k" * 32, "DATABASE_URL": database_url}
    app = create_app(config)
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    finally:
        close_web_app(app)
    monkeypatch.setenv("WEBAPP_INSECURE_COOKIES", "1")
    app = create_app(config)
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is False
    finally:
        close_web_app(app)


# --- requires(): pages and API calls --------------------------------------------------


def test_anonymous_browser_is_sent_to_login_with_next(guarded: Flask) -> None:
    response = guarded.test_client().get("/_test/look?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/_test/look?x%3D1"


def test_anonymous_api_call_gets_a_401_json_error(guarded: Flask) -> None:
    response = guarded.test_client().get("/_test/look", headers=JSON)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(response.get_json()) == {"error"}
    assert "Authorization: Bearer" in response.get_json()["error"]["message"]


def test_viewer_may_look_but_gets_403_on_an_operator_action(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    create_user("val", "viewer")
    client = guarded.test_client()
    log_in(client, "val")
    assert client.get("/_test/look").get_json() == {"name": "val", "role": "viewer", "kind": "user"}
    page = client.get("/_test/act")
    assert page.status_code == 403
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Not allowed" in html and "needs the operator role" in html
    as_json = client.get("/_test/act", headers=JSON)
    assert as_json.status_code == 403
    assert "operator role" in as_json.get_json()["error"]["message"]


def test_operator_may_act_and_the_action_is_audited(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    create_user("otto", "operator")
    client = guarded.test_client()
    log_in(client, "otto")
    assert client.get("/_test/act").get_json() == {"done": True}
    entry = audit_rows(guarded)[-1]
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        "otto",
        "thing.act",
        "thing-1",
        "by the test",
    )
    assert entry.at.tzinfo is not None and entry.at.utcoffset().total_seconds() == 0


def test_bearer_tokens_by_role(guarded: Flask, create_token: Callable[..., str]) -> None:
    viewer, operator = create_token("dash", "viewer"), create_token("ci", "operator")
    client = guarded.test_client()
    assert client.get("/_test/look", headers=bearer(viewer)).get_json()["kind"] == "token"
    refused = client.post("/_test/act", headers=bearer(viewer))
    assert refused.status_code == 403 and refused.mimetype == "application/json"
    # A bearer request needs no CSRF token: CSRF checks stay on for cookie sessions.
    assert client.post("/_test/act", headers=bearer(operator)).get_json() == {"done": True}
    assert audit_rows(guarded)[-1].actor == "token:ci"
    with guarded.app_context():
        used = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == "ci"))
        assert used.last_used_at is not None
        assert used.token_hash == hash_token(operator) and operator not in used.token_hash


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "bearer", "BEARER x"])
def test_garbage_bearer_tokens_get_401(guarded: Flask, header: str) -> None:
    response = guarded.test_client().get("/_test/look", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"]["message"]


def test_basic_auth_from_a_proxy_neither_signs_in_nor_skips_csrf(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    """A proxy's ``Authorization: Basic`` (sent by browsers on their own) is not ours."""
    create_user("otto", "operator")
    client = guarded.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Basic YWxpY2U6c2VjcmV0"
    assert client.get("/_test/look").status_code == 302
    assert client.post("/login", data={"name": "otto", "password": PASSWORD}).status_code == 400
    log_in(client, "otto")
    assert client.get("/_test/look").get_json()["name"] == "otto"
    assert client.post("/_test/act").status_code == 400  # no CSRF token


def test_a_revoked_token_gets_401(
    guarded: Flask, create_token: Callable[..., str], database_url: str
) -> None:
    token = create_token("old", "operator")
    client = guarded.test_client()
    assert client.get("/_test/look", headers=bearer(token)).status_code == 200
    result = guarded.test_cli_runner().invoke(args=["token", "revoke", "old"])
    assert result.exit_code == 0, result.output
    response = client.get("/_test/look", headers=bearer(token))
    assert response.status_code == 401
    assert "invalid or was revoked" in response.get_json()["error"]["message"]


def test_a_bad_token_is_not_rescued_by_a_session_cookie(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    create_user("otto", "operator")
    client = guarded.test_client()
    log_in(client, "otto")
    assert client.get("/_test/look", headers=bearer("garbage")).status_code == 401


def test_requires_rejects_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="invalid role 'admin'"):
        requires("admin")  # type: ignore[arg-type]


# --- CSRF -----------------------------------------------------------------------------


def test_a_form_post_without_csrf_token_is_refused(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    assert guarded.config["WTF_CSRF_ENABLED"] is True
    create_user("otto", "operator")
    client = guarded.test_client()
    refused = client.post("/login", data={"name": "otto", "password": PASSWORD})
    assert refused.status_code == 400
    assert "CSRF token is missing" in refused.get_data(as_text=True)
    log_in(client, "otto")
    response = client.post("/_test/act", data={})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert [e.action for e in audit_rows(guarded)] == ["login"]
    forged = client.post("/_test/act", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert client.post("/logout").status_code == 400


# --- the audit page --------------------------------------------------------------------


def test_audit_page_lists_entries_newest_first_and_pages(
    guarded: Flask, create_user: Callable[..., User]
) -> None:
    create_user("val", "viewer")
    with guarded.test_request_context():
        for number in range(55):
            audit("queue.purge", f"queue-{number:02d}", detail=f"{number} messages")
    client = guarded.test_client()
    log_in(client, "val")
    first = client.get("/audit").get_data(as_text=True)
    assert first.index("queue-54") < first.index("queue-53")
    assert "queue-04" not in first and "Page 1 of 2" in first
    second = client.get("/audit?page=2").get_data(as_text=True)
    assert "queue-04" in second and "queue-54" not in second
    assert "anonymous" in second
    only = client.get("/audit?action=login").get_data(as_text=True)
    assert "queue-54" not in only and "val" in only
    assert client.get("/audit?page=9").status_code == 404


# --- the commands ------------------------------------------------------------------------


def test_user_create_with_prompt_and_with_password_stdin(web_app: Flask) -> None:
    runner = web_app.test_cli_runner()
    prompted = runner.invoke(
        args=["user", "create", "alice", "--role", "operator"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert "Created user 'alice' with the operator role." in prompted.output
    piped = runner.invoke(
        args=["user", "create", "val", "--role", "viewer", "--password-stdin"],
        input=f"{PASSWORD}\n",
    )
    assert piped.exit_code == 0, piped.output
    with web_app.app_context():
        assert User.authenticate("alice", PASSWORD).role == "operator"
        assert User.authenticate("val", PASSWORD).role == "viewer"
        stored = db.session.scalar(sa.select(User.password_hash).where(User.name == "val"))
        assert stored.startswith("scrypt:") and PASSWORD not in stored
    listed = runner.invoke(args=["user", "list"])
    assert "alice" in listed.output and "viewer" in listed.output
    assert PASSWORD not in listed.output
    actions = [(e.action, e.target) for e in audit_rows(web_app)]
    assert actions == [("user.create", "alice"), ("user.create", "val")]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "admin"], "", "'admin' is not one of 'viewer', 'operator'"),
        (["--role", "viewer", "--password-stdin"], "short\n", "at least 8 characters"),
        (["--role", "viewer", "--password-stdin"], "", "held no password"),
        ([], "", "Missing option '--role'"),
    ],
)
def test_user_create_refuses_bad_input(
    web_app: Flask, args: list[str], stdin: str, message: str
) -> None:
    result = web_app.test_cli_runner().invoke(args=["user", "create", "bob", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    with web_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_user_create_refuses_a_bad_name_and_a_duplicate(
    web_app: Flask, create_user: Callable[..., User]
) -> None:
    runner = web_app.test_cli_runner()
    bad = runner.invoke(
        args=["user", "create", "no spaces", "--role", "viewer", "--password-stdin"],
        input=f"{PASSWORD}\n",
    )
    assert bad.exit_code == 2 and "invalid name 'no spaces'" in bad.output
    create_user("alice")
    again = runner.invoke(
        args=["user", "create", "alice", "--role", "viewer", "--password-stdin"],
        input=f"{PASSWORD}\n",
    )
    assert again.exit_code == 1 and "a user named 'alice' already exists" in again.output


def test_user_create_prompt_refuses_mismatched_confirmation(web_app: Flask) -> None:
    result = web_app.test_cli_runner().invoke(
        args=["user", "create", "alice", "--role", "viewer"],
        input=f"{PASSWORD}\nsomething else\n",
    )
    assert result.exit_code != 0
    assert "The two entered values do not match." in result.output


def test_token_create_prints_the_token_once_and_it_works(guarded: Flask) -> None:
    runner = guarded.test_cli_runner()
    result = runner.invoke(args=["token", "create", "ci", "--role", "operator"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert len(token) >= 43 and "\n" not in token
    assert "shown only this once" in result.stderr
    response = guarded.test_client().post("/_test/act", headers=bearer(token))
    assert response.get_json() == {"done": True}
    listed = runner.invoke(args=["token", "list"])
    assert "ci" in listed.output and "operator" in listed.output
    assert token not in listed.output and hash_token(token) not in listed.output
    duplicate = runner.invoke(args=["token", "create", "ci", "--role", "viewer"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    bad_role = runner.invoke(args=["token", "create", "x", "--role", "root"])
    assert bad_role.exit_code == 2 and "'root' is not one of" in bad_role.output
    missing = runner.invoke(args=["token", "revoke", "nope"])
    assert missing.exit_code == 1 and "no token named 'nope'" in missing.output
    with guarded.app_context():
        details = [e.detail for e in db.session.scalars(sa.select(AuditEntry))]
    assert all(token not in detail for detail in details)


# --- the factory and headers -----------------------------------------------------------------


def test_every_response_has_the_security_headers(web_client: FlaskClient) -> None:
    for path in ("/login", "/audit", "/no-such-page", "/static/console.css"):
        headers = web_client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(
    web_client: FlaskClient, create_user: Callable[..., User]
) -> None:
    create_user("otto", "operator")
    log_in(web_client, "otto")
    for path in ("/login", "/audit", "/no-such-page"):
        html = web_client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "style=" not in html and " on" + "click" not in html


def test_create_app_refuses_to_start_without_a_secret_key(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBAPP_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="WEBAPP_SECRET_KEY is not set"):
        create_app({"DATABASE_URL": database_url})
    with pytest.raises(RuntimeError, match="WEBAPP_SECRET_KEY is too short"):
        create_app({"DATABASE_URL": database_url, "SECRET_KEY": "short"})
    monkeypatch.setenv("WEBAPP_SECRET_KEY", "s" * 40)
    app = create_app({"DATABASE_URL": database_url})
    try:
        assert app.secret_key == "s" * 40
    finally:
        close_web_app(app)


def test_testing_apps_get_a_random_secret_key(database_url: str) -> None:
    first, second = make_web_app(database_url), make_web_app(database_url)
    try:
        assert first.secret_key and first.secret_key != second.secret_key
    finally:
        close_web_app(first)
        close_web_app(second)


def test_text_with_a_nul_character_is_refused_before_any_view(
    web_app: Flask, web_client: FlaskClient, create_user: Callable[..., User]
) -> None:
    # PostgreSQL text cannot hold NUL: an order form with one used to end as a 500.
    create_user("ada", "operator")
    log_in(web_client, "ada")
    token = csrf_token_from(web_client.get("/orders").get_data(as_text=True))
    form = {"customer_name": "A\x00B", "phone": "+447700900123", "email": "a@example.com",
            "items": "one book", "amount": "10", "csrf_token": token}  # fmt: skip
    page = web_client.post("/orders", data=form)
    assert page.status_code == 400 and "NUL character" in page.get_data(as_text=True)
    assert "<nav" in page.get_data(as_text=True)  # the console's error page, not a bare one
    assert web_client.get("/reports?text=a%00b").status_code == 400
    with web_app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 0
