"""``flask user create|list`` and ``flask token create|list|revoke``."""

from __future__ import annotations

import sys
from datetime import datetime

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from ..db import db
from .access import audit
from .models import ROLES, ApiToken, User, check_name

user_cli = AppGroup("user", help="Console users (people who sign in with a password).")
token_cli = AppGroup("token", help="API tokens (machines that send 'Authorization: Bearer').")

_role_option = click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="viewer: read only; operator: may also act (revoke, purge, replay, ...).",
)


def _valid_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@user_cli.command("create")
@click.argument("name", callback=_valid_name)
@_role_option
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)
def create_user(name: str, role: str, password_stdin: bool) -> None:
    """Create the user NAME; the password is prompted for twice."""
    if db.session.scalar(sa.select(User.id).where(User.name == name)) is not None:
        raise click.ClickException(f"a user named {name!r} already exists")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("--password-stdin: standard input held no password")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = User(name=name, role=role)
    try:
        user.set_password(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.add(user)
    try:
        audit("user.create", name, detail=f"role {role}")
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"a user named {name!r} already exists") from None
    click.echo(f"Created user {name!r} with the {role} role.")


@user_cli.command("list")
def list_users() -> None:
    """List users with their roles."""
    users = db.session.scalars(sa.select(User).order_by(User.name)).all()
    if not users:
        click.echo("No users yet: flask --app webapp user create NAME --role operator")
        return
    _table(("NAME", "ROLE", "CREATED"), [(u.name, u.role, _when(u.created_at)) for u in users])


@token_cli.command("create")
@click.argument("name", callback=_valid_name)
@_role_option
def create_token(name: str, role: str) -> None:
    """Create the API token NAME and print it, once: only its hash is kept."""
    if db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise click.ClickException(f"a token named {name!r} already exists (revoke it first)")
    row, token = ApiToken.issue(name, role)
    db.session.add(row)
    try:
        audit("token.create", name, detail=f"role {role}")
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"a token named {name!r} already exists") from None
    click.echo(
        f"Created token {name!r} with the {role} role. It is shown only this once; "
        "send it as 'Authorization: Bearer <token>':",
        err=True,
    )
    click.echo(token)


@token_cli.command("list")
def list_tokens() -> None:
    """List API tokens (names and roles; the tokens themselves are not kept)."""
    tokens = db.session.scalars(sa.select(ApiToken).order_by(ApiToken.name)).all()
    if not tokens:
        click.echo("No tokens yet: flask --app webapp token create NAME --role viewer")
        return
    _table(
        ("NAME", "ROLE", "CREATED", "LAST USED"),
        [(t.name, t.role, _when(t.created_at), _when(t.last_used_at)) for t in tokens],
    )


@token_cli.command("revoke")
@click.argument("name")
def revoke_token(name: str) -> None:
    """Revoke the API token NAME: requests with it get 401 from now on."""
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise click.ClickException(f"no token named {name!r} (see: flask token list)")
    db.session.delete(row)
    audit("token.revoke", name)
    click.echo(f"Revoked token {name!r}.")
