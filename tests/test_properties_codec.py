"""Properties of the wire format (taskcore/message.py), with hypothesis.

- Any JSON arguments survive the trip exactly: built by ``TaskApp.message``, encoded
  (body and AMQP properties, through pamqp's own frame encoding, as on the wire) and
  decoded by the worker's ``decode``: same values, same types, same id, name, retries.
- ``decode`` of anything at all (any bytes; any type, content type, encoding and headers,
  ``x-taskcore-retries`` of any type) gives a well-formed TaskMessage or raises
  DecodeError saying what is wrong: never any other exception, which would take the
  worker's settling path by surprise instead of dead-lettering the message.
- Arguments that are not JSON (NaN, infinity, sets, objects, bytes, dict keys that are
  not strings, nesting too deep) raise EncodeError naming the task, at the sender.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pamqp import frame, header

from taskcore import TaskApp
from taskcore.errors import DecodeError, EncodeError
from taskcore.message import CONTENT_TYPE, H_ETA, H_QUEUE, H_RETRIES, TaskMessage, decode

PROPERTIES = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

#: Any Python string, lone surrogates included (JSON carries them as \ud800 escapes).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
TASK_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}(\.[a-z][a-z0-9_]{0,20}){0,3}", fullmatch=True)


@dataclass
class Received:
    """A delivered message as ``decode`` reads it (taskcore.message.ReceivedMessage)."""

    body: bytes
    headers: Mapping[str, Any] | None = None
    message_id: str | None = None
    type: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    priority: int | None = None
    correlation_id: str | None = None
    timestamp: datetime | None = None
    app_id: str | None = None
    redelivered: bool | None = False

    async def ack(self) -> None:
        raise AssertionError("decode never settles a message")

    async def nack(self, requeue: bool = True) -> None:
        raise AssertionError("decode never settles a message")


@pytest.fixture(scope="module")
def app() -> Iterator[TaskApp]:
    """A TaskApp that only builds messages (it never connects)."""
    built = TaskApp("props", broker_url="amqp://guest:guest@127.0.0.1:1/")
    yield built
    built.close()


def over_the_wire(message: TaskMessage) -> Received:
    """``message`` as a worker receives it: its properties through AMQP's frame encoding."""
    body = message.body()
    content = header.ContentHeader(0, len(body), message.properties())
    _, _, decoded = frame.unmarshal(frame.marshal(content, 1))
    props = decoded.properties
    return Received(
        body=body,
        headers=props.headers,
        message_id=props.message_id,
        type=props.message_type,
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        priority=props.priority,
        timestamp=props.timestamp,
    )


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@PROPERTIES
@given(
    name=TASK_NAMES,
    args=st.lists(JSON_VALUES, max_size=5),
    kwargs=st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=5),
    retries=st.integers(min_value=0, max_value=2**31 - 1),
)
@example(name="t", args=[-0.0, 1.0, 1, True, "\ud800", "\x00", 2**64], kwargs={"": {}}, retries=0)
def test_json_arguments_round_trip_exactly(
    app: TaskApp, name: str, args: list[Any], kwargs: dict[str, Any], retries: int
) -> None:
    sent = app.message(name, args, kwargs, queue="work")
    sent.retries = retries
    received = decode(over_the_wire(sent), "work")
    assert same(received.args, args) and same(received.kwargs, kwargs)
    assert (received.id, received.task, received.queue) == (sent.id, name, "work")
    assert received.retries == retries
    assert received.headers[H_QUEUE] == "work" and isinstance(received.headers[H_ETA], int)
    assert json.loads(sent.body()) == {"args": args, "kwargs": kwargs}


# -- decode of anything ---------------------------------------------------------------

HEADER_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | ANY_TEXT
    | st.binary(max_size=10)
    | st.decimals(allow_nan=False)
    | st.datetimes(timezones=st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=6,
)
HEADERS = st.none() | st.dictionaries(
    st.sampled_from([H_RETRIES, H_QUEUE, H_ETA, "x-death"]) | ANY_TEXT, HEADER_VALUES, max_size=4
)
BODIES = (
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({}, optional={"args": JSON_VALUES, "kwargs": JSON_VALUES}).map(
        lambda v: json.dumps(v).encode("utf-8", "surrogatepass")
    )
    | st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n)
)
CONTENT_TYPES = st.none() | st.sampled_from(
    ["", CONTENT_TYPE, "application/x-python-serialize", "text/plain", "APPLICATION/JSON"]
)
ENCODINGS = st.none() | st.sampled_from(["", "utf-8", "UTF-8", "utf8", "gzip", "binary"])


@PROPERTIES
@given(
    body=BODIES,
    headers=HEADERS,
    message_id=st.none() | ANY_TEXT,
    task=st.none() | ANY_TEXT,
    content_type=CONTENT_TYPES | ANY_TEXT,
    content_encoding=ENCODINGS | ANY_TEXT,
)
@example(b"[" * 100_000 + b"]" * 100_000, None, None, "t", None, None)  # too deep for json
@example(b'{"args": []}', {H_RETRIES: True}, "id", "t", CONTENT_TYPE, None)  # not a number
@example(b'{"args": []}', {H_RETRIES: -1}, "id", "t", CONTENT_TYPE, None)
@example(b'{"args": []}', {H_RETRIES: 1.0}, "id", "t", CONTENT_TYPE, None)
@example(b'{"args": []}', {H_RETRIES: "2"}, "id", "t", CONTENT_TYPE, None)
@example(b"\xff\xfe{", None, "id", "t", CONTENT_TYPE, "utf-8")  # not UTF-8
@example(b'{"args": [1]}', None, "id", "t", "application/x-python-serialize", None)
def test_decode_gives_a_task_message_or_says_what_is_wrong(
    body: bytes,
    headers: dict[str, Any] | None,
    message_id: str | None,
    task: str | None,
    content_type: str | None,
    content_encoding: str | None,
) -> None:
    delivered = Received(
        body=body,
        headers=headers,
        message_id=message_id,
        type=task,
        content_type=content_type,
        content_encoding=content_encoding,
    )
    try:
        message = decode(delivered, "work")
    except DecodeError as exc:
        assert str(exc), "a DecodeError says what is wrong"
        return
    # Only a JSON body, declared as JSON (or undeclared) and UTF-8, ever runs.
    assert content_type in (None, "", CONTENT_TYPE)
    assert (content_encoding or "utf-8").lower() in ("utf-8", "utf8")
    assert message.task == task and isinstance(task, str) and task
    assert isinstance(message.id, str) and message.id
    assert message.id == message_id or not message_id
    assert message.queue == "work"
    assert isinstance(message.args, list) and isinstance(message.kwargs, dict)
    assert type(message.retries) is int and message.retries >= 0


# -- encode of what is not JSON --------------------------------------------------------


class Opaque:
    """Some object of the caller's."""


NOT_JSON = (
    st.sampled_from([math.nan, math.inf, -math.inf, Decimal("1.5"), b"bytes", 1j])
    | st.builds(Opaque)
    | st.sets(st.integers(), max_size=3)
    | st.datetimes()
    | st.dictionaries(
        st.integers() | st.floats() | st.booleans() | st.none(), JSON_VALUES, min_size=1, max_size=3
    )
)


def _inside(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``inner`` put somewhere in a list or an object among JSON values."""
    in_list = st.tuples(st.lists(JSON_VALUES, max_size=3), st.integers(0, 3), inner).map(
        lambda t: [*t[0][: t[1]], t[2], *t[0][t[1] :]]
    )
    in_object = st.tuples(st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3), ANY_TEXT, inner).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    return in_list | in_object


BAD_VALUES = st.recursive(NOT_JSON, _inside, max_leaves=4)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@PROPERTIES
@given(name=TASK_NAMES, bad=BAD_VALUES, where=st.sampled_from(["args", "kwargs"]))
@example(name="t", bad={1: "one"}, where="args")  # json would send the key as "1"
@example(name="t", bad={None: 1, "null": 2}, where="kwargs")
@example(name="t", bad=nested(5000), where="args")  # too deep to encode
@example(name="t", bad=10**5000, where="args")  # more digits than int() reads back
def test_arguments_that_are_not_json_raise_encode_error(
    app: TaskApp, name: str, bad: Any, where: str
) -> None:
    args, kwargs = ([bad], {}) if where == "args" else ([], {"value": bad})
    message = app.message(name, args, kwargs)
    with pytest.raises(EncodeError) as raised:
        message.body()
    assert name in str(raised.value) and "JSON" in str(raised.value)


def test_a_self_containing_argument_raises_encode_error(app: TaskApp) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodeError, match=r"t\.loop"):
        app.message("t.loop", [loop]).body()
