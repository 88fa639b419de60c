"""The sign-in form (Flask-WTF: it carries and checks the CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Name and password; ``next`` is where to go afterwards (a path on this site)."""

    name = StringField(
        "Name",
        validators=[DataRequired(message="Enter your name."), Length(max=64)],
        render_kw={"autocomplete": "username", "autofocus": True, "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(message="Enter your password."), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
