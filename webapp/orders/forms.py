"""The order forms (Flask-WTF: each carries and checks the CSRF token)."""

from __future__ import annotations

import re
from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import DecimalField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, ValidationError

from .models import CHANNELS

#: Loose but useful: one @, no spaces, a dot in the domain (no DNS look-up).
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}")
_PHONE_CHARS = re.compile(r"\+?[0-9 ()./-]+")


def normalize_phone(raw: str) -> str:
    """``+44 20 7946 0958`` -> ``+442079460958``; ValueError saying what is wrong."""
    text = raw.strip()
    if not _PHONE_CHARS.fullmatch(text):
        raise ValueError("Use digits, spaces and + ( ) - only, e.g. +44 20 7946 0958.")
    digits = re.sub(r"\D", "", text)
    if not 8 <= len(digits) <= 15:
        raise ValueError(f"A phone number has 8 to 15 digits; this one has {len(digits)}.")
    return ("+" if text.startswith("+") else "") + digits


class OrderForm(FlaskForm):
    """A new order: who it is for, how to reach them, what and how much."""

    customer_name = StringField(
        "Customer name",
        validators=[DataRequired(message="Enter the customer's name."), Length(max=120)],
    )
    phone = StringField(
        "Phone (for SMS)",
        validators=[DataRequired(message="Enter a phone number.")],
        render_kw={"inputmode": "tel", "autocomplete": "tel", "placeholder": "+44 20 7946 0958"},
    )
    email = StringField(
        "E-mail",
        validators=[DataRequired(message="Enter an e-mail address."), Length(max=254)],
        render_kw={"inputmode": "email", "autocomplete": "email"},
    )
    items = TextAreaField(
        "Items",
        validators=[DataRequired(message="List what was ordered."), Length(max=2000)],
        render_kw={"rows": 2, "placeholder": "2 notebooks, 1 pen"},
    )
    amount = DecimalField(
        "Amount",
        places=2,
        validators=[
            DataRequired(message="Enter the amount, e.g. 19.90."),
            NumberRange(
                min=Decimal("0.01"),
                max=Decimal("99999999.99"),
                message="The amount must be between 0.01 and 99,999,999.99.",
            ),
        ],
        render_kw={"inputmode": "decimal", "placeholder": "19.90"},
    )

    def validate_phone(self, field: StringField) -> None:
        try:
            field.data = normalize_phone(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_email(self, field: StringField) -> None:
        field.data = (field.data or "").strip()
        if not _EMAIL.fullmatch(field.data):
            raise ValidationError("That is not an e-mail address (name@example.com).")


class StatusForm(FlaskForm):
    """Move an order to its next status (choices set per order)."""

    status = SelectField("New status", choices=[])


class FailingSenderForm(FlaskForm):
    """Switch a channel's failing sender on or off."""

    channel = SelectField("Channel", choices=list(CHANNELS))
    on = SelectField("Switch", choices=[SelectChoice("1", "on"), SelectChoice("0", "off")])
