"""Users, API tokens and the audit log."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Literal, get_args

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import UTCDateTime, db, utcnow

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it is a valid user or token name, else ValueError saying what is allowed."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: use 1-64 letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    """``role`` if it is one of ROLES, else ValueError naming them."""
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


@functools.cache
def _dummy_hash() -> str:
    """A real scrypt hash to check when a name is unknown: a wrong name then takes as
    long as a wrong password, so the timing does not tell which names exist."""
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    """A person who signs in to the console with a name and a password."""

    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("role IN ('viewer', 'operator')", name="users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        """Store a scrypt hash of ``password`` (ValueError if it is too short)."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is this user's."""
        return check_password_hash(self.password_hash, password)

    @classmethod
    def authenticate(cls, name: str, password: str) -> User | None:
        """The user with this name and password, or None (in the same time either way)."""
        user = db.session.scalar(sa.select(cls).where(cls.name == name))
        if user is None:
            check_password_hash(_dummy_hash(), password)
            return None
        return user if user.check_password(password) else None

    def __repr__(self) -> str:
        return f"<User {self.name} ({self.role})>"


def hash_token(token: str) -> str:
    """The stored form of a bearer token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """A bearer token for machines; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (sa.CheckConstraint("role IN ('viewer', 'operator')", name="tokens_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @classmethod
    def issue(cls, name: str, role: str) -> tuple[ApiToken, str]:
        """A new (unsaved) token row and the plain token, which is never stored."""
        token = secrets.token_urlsafe(32)
        row = cls(name=check_name(name), role=check_role(role), token_hash=hash_token(token))
        return row, token

    @classmethod
    def find(cls, token: str) -> ApiToken | None:
        """The token row whose hash matches ``token``, or None."""
        digest = hash_token(token)
        row = db.session.scalar(sa.select(cls).where(cls.token_hash == digest))
        # The lookup is by an index; compare once more in constant time for good measure.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        return row

    def __repr__(self) -> str:
        return f"<ApiToken {self.name} ({self.role})>"


class AuditEntry(db.Model):  # type: ignore[name-defined,misc]
    """Who did what to which thing, and when (UTC)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(100))
    target: Mapped[str] = mapped_column(sa.String(255))
    detail: Mapped[str] = mapped_column(sa.Text, default="")

    def __repr__(self) -> str:
        return f"<AuditEntry {self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}>"
