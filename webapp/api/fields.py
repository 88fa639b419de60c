"""marshmallow fields the API shares: UTC timestamps, JSON kept as text, times like ``1h``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate

_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AMOUNT = r"[0-9]{1,9}(?:\.[0-9]{1,6})?"
_AGO = _AMOUNT + "[smhdw]"
_YEAR = r"[1-9][0-9]{3}"
# Month and day together, so that the pattern admits no impossible date. 29 February is
# left out (a pattern cannot tell leap years): Moment accepts it in leap years all the same.
_MONTH_DAY = (
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
)
_TIME = (
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
#: What ``Moment`` accepts, for the document: a time ago or an ISO 8601 date and time.
MOMENT_PATTERN = rf"^(?:{_AGO}|{_YEAR}-{_MONTH_DAY}{_TIME})$"
_DURATION = re.compile(rf"^({_AMOUNT})([smhdw])$")
#: Longest look-back a duration may ask for (about ten years).
MAX_DURATION = timedelta(days=3660)


def iso_utc(value: datetime | float | int | str | None) -> str | None:
    """``value`` (a datetime, Unix seconds or an ISO string) as ISO 8601 UTC, ``...Z``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class Timestamp(fields.DateTime):
    """A moment in ISO 8601 UTC (``2024-05-01T12:00:00.000Z``) from a datetime or Unix seconds."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        try:
            return iso_utc(value)
        except (TypeError, ValueError, OverflowError, OSError):
            return None


class JSONText(fields.Raw):
    """A JSON value stored as text (history rows): dumped as the value, not the text."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value  # not JSON after all (written by something else): the text itself


class Moment(fields.String):
    """A point in time given as ISO 8601 (UTC if no zone) or as a time ago: ``90s``, ``15m``,
    ``1h``, ``7d``, ``2w``. Loads to a timezone-aware datetime."""

    default_error_messages = {
        "moment": "use an ISO 8601 date and time (2024-05-01T12:00:00Z) or a time ago (1h, 7d)"
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "pattern": MOMENT_PATTERN,
            "description": "ISO 8601 date and time (UTC unless a zone is given) or a time "
            "ago: 90s, 15m, 1h, 7d, 2w",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(MOMENT_PATTERN, text.replace("-02-29", "-02-28", 1)):
            raise self.make_error("moment")
        duration = _DURATION.fullmatch(text)
        if duration:
            try:
                ago = timedelta(seconds=float(duration.group(1)) * _UNIT[duration.group(2)])
            except OverflowError:
                ago = MAX_DURATION
            return datetime.now(UTC) - min(ago, MAX_DURATION)
        try:
            moment = datetime.fromisoformat(text)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):  # 29 February of a common year; past year 9999
            raise self.make_error("moment") from None


class FullMatch(validate.Regexp):
    """``validate.Regexp`` over the whole value: a trailing newline does not slip past ``$``."""

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class JSONBoolean(fields.Boolean):
    """``true`` or ``false`` and nothing else: marshmallow's Boolean also takes 0, 1,
    "yes", "on"..., which the document (``type: boolean``) refuses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class JSONInteger(fields.Integer):
    """A JSON integer (``5``, or ``5.0`` as JSON Schema counts it): not ``true``,
    ``"5"`` or ``5.5``, which marshmallow's Integer takes (5.5 as 5) and the document
    refuses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:  # marshmallow would make 5.5 a 5
            raise self.make_error("invalid", input=value)
        return super()._deserialize(int(value), attr, data, **kwargs)


class JSONNumber(fields.Float):
    """A JSON number: not ``true``, not ``"1.5"`` or ``"nan"``, which marshmallow's Float
    takes and the document refuses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)
