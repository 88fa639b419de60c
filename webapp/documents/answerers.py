"""Who answers the questions: an ``Answerer`` protocol and two implementations.

* ``OfflineAnswerer`` (the default): deterministic, no network, no model. It works out
  arithmetic, answers from a small glossary, and otherwise writes an outline built from
  the question's keywords.
* ``HttpAnswerer``: how a slow outside service fits. It POSTs ``{"question": ...}`` to a
  URL and expects ``{"answer": "..."}``, with a time limit per call. A timeout, a refused
  connection, a 429 or a 5xx raise ``AnswerServiceUnavailable``, which the processing task
  retries with exponential backoff (taskcore's ``autoretry_for``); any other bad answer
  raises ``AnswerServiceError`` and fails the document at once.

``make_answerer(settings)`` picks one from ``WEBAPP_DOCUMENTS_ANSWERER``.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any, Protocol

import requests

from .settings import DocumentSettings


class Answerer(Protocol):
    """Answers one question at a time; ``name`` is shown on the page and in the PDF."""

    name: str

    def answer(self, question: str) -> str: ...

    def close(self) -> None: ...


class NotArithmetic(ValueError):
    """The text is not an arithmetic expression ``evaluate`` accepts."""


class AnswerServiceError(Exception):
    """The answer service gave an answer that cannot be used (not retried)."""


class AnswerServiceUnavailable(ConnectionError):
    """The answer service timed out, refused, or answered 429/5xx (retried with backoff)."""


# -- offline -----------------------------------------------------------------------------

GLOSSARY: dict[str, str] = {
    "photosynthesis": (
        "Photosynthesis is the process by which green plants, algae and some bacteria use "
        "light energy to turn carbon dioxide and water into glucose and oxygen."
    ),
    "osmosis": (
        "Osmosis is the movement of water through a partially permeable membrane from a "
        "dilute solution to a more concentrated one."
    ),
    "mitochondria": (
        "Mitochondria are the organelles that release energy from glucose by aerobic "
        "respiration; they are called the powerhouse of the cell."
    ),
    "gravity": (
        "Gravity is the force of attraction between masses; near the Earth's surface it "
        "accelerates falling objects at about 9.8 m/s²."
    ),
    "atom": (
        "An atom is the smallest unit of a chemical element: a nucleus of protons and "
        "neutrons surrounded by electrons."
    ),
    "prime number": (
        "A prime number is a whole number greater than 1 whose only divisors are 1 and "
        "itself, such as 2, 3, 5, 7 and 11."
    ),
    "democracy": (
        "Democracy is a system of government in which power rests with the people, who "
        "rule directly or through representatives they elect."
    ),
    "inflation": (
        "Inflation is the general rise of prices over time, which reduces what a unit of "
        "money can buy."
    ),
    "evaporation": (
        "Evaporation is the change of a liquid into a gas at its surface, below its boiling point."
    ),
    "algorithm": (
        "An algorithm is a finite sequence of well-defined steps that solves a problem or "
        "performs a computation."
    ),
    "ecosystem": (
        "An ecosystem is a community of living organisms together with the non-living "
        "parts of their environment, interacting as a system."
    ),
    "pythagoras": (
        "Pythagoras' theorem: in a right-angled triangle the square of the hypotenuse "
        "equals the sum of the squares of the other two sides (a² + b² = c²)."
    ),
}

_WORD_OPERATORS = [
    (re.compile(r"\bmultiplied by\b|\btimes\b", re.I), "*"),
    (re.compile(r"\bdivided by\b|\bover\b", re.I), "/"),
    (re.compile(r"\bplus\b", re.I), "+"),
    (re.compile(r"\bminus\b", re.I), "-"),
    (re.compile(r"\bto the power of\b", re.I), "**"),
    (re.compile("(?<=\\d)\\s*[\u00d7x](?=\\s*\\d)"), " * "),  # 3 x 4, or the multiplication sign
    (re.compile(r"÷"), "/"),
    (re.compile(r"\^"), "**"),
]
# A run of numbers joined by operators (at least one operator), parentheses allowed.
_EXPRESSION = re.compile(
    r"[(\s]*-?\d+(?:\.\d+)?[)\s]*(?:(?:\*\*|[-+*/%])[(\s]*-?\d+(?:\.\d+)?[)\s]*)+"
)
_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_STOPWORDS = frozenset(
    """a about above after again all also an and any are as at be because been before being
    below between both but by can could describe did discuss do does doing down during each
    explain few for from further give had has have having how i if in into is it its itself
    list many may me might more most must my name no nor not of off on once only or other
    our out over own same shall should show so some state such than that the their them then
    there these they this those through to too under until up use using very was we were what
    when where which while who whom why will with would write you your briefly examples
    example following""".split()  # noqa: SIM905 - a word list reads better as prose
)


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression (numbers, + - * / % **, parentheses).

    Parsed with ``ast`` and evaluated node by node: nothing else is allowed, and powers
    are capped so that ``9**9**9`` cannot eat the worker. ValueError if it is not one.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise NotArithmetic(f"not an arithmetic expression: {expression!r}") from exc

    def walk(node: ast.AST) -> float | int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value  # type: ignore[no-any-return]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))  # type: ignore[no-any-return]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
                raise ValueError("that power is too large to work out here")
            return _OPERATORS[type(node.op)](left, right)  # type: ignore[no-any-return]
        raise NotArithmetic(f"not an arithmetic expression: {expression!r}")

    try:
        return walk(tree)
    except ZeroDivisionError as exc:
        raise ValueError("division by zero") from exc


def format_number(value: float | int) -> str:
    """``4``, ``2.5``, ``0.333333`` (at most six decimals, no trailing zeros)."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def keywords(question: str, limit: int = 4) -> list[str]:
    """The question's content words in order of appearance, without repeats."""
    seen: list[str] = []
    for word in re.findall(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'-]+", question):
        lowered = word.lower().strip("'-")
        if len(lowered) >= 4 and lowered not in _STOPWORDS and lowered not in seen:
            seen.append(lowered)
    return seen[:limit]


class OfflineAnswerer:
    """Deterministic answers without network or model: arithmetic, glossary, outline."""

    name = "offline"

    def answer(self, question: str) -> str:
        return self._arithmetic(question) or self._glossary(question) or self._outline(question)

    def close(self) -> None:
        pass

    @staticmethod
    def _arithmetic(question: str) -> str | None:
        text = question
        for pattern, symbol in _WORD_OPERATORS:
            text = pattern.sub(f" {symbol} ", text)
        found = _EXPRESSION.search(text)
        if not found:
            return None
        expression = _SPACES.sub(" ", found.group(0)).strip()
        try:
            value = evaluate(expression)
        except NotArithmetic:
            return None  # e.g. an unbalanced parenthesis picked up from the prose
        except (ValueError, OverflowError) as exc:
            return f"{expression} cannot be worked out: {exc}."
        return f"{expression} = {format_number(value)}"

    @staticmethod
    def _glossary(question: str) -> str | None:
        lowered = question.lower()
        matches = [term for term in GLOSSARY if re.search(rf"\b{re.escape(term)}", lowered)]
        if not matches:
            return None
        return GLOSSARY[max(matches, key=len)]

    @staticmethod
    def _outline(question: str) -> str:
        words = keywords(question)
        if not words:
            return "Outline: restate the question in your own words, then answer it directly."
        topic = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        steps = [f"define {words[0]}"]
        steps += [f"explain how {word} relates to {words[0]}" for word in words[1:3]]
        steps.append("give an example and a one-sentence conclusion")
        return f"Outline: an answer covers {topic}. " + "; ".join(steps).capitalize() + "."


_SPACES = re.compile(r"\s+")


# -- http ---------------------------------------------------------------------------------


class HttpAnswerer:
    """Asks an HTTP service: POST ``{"question"}`` → ``{"answer"}``, ``timeout`` per call."""

    name = "http"

    def __init__(self, url: str, timeout: float) -> None:
        if not url:
            raise AnswerServiceError(
                "WEBAPP_DOCUMENTS_ANSWERER=http needs WEBAPP_DOCUMENTS_ANSWERER_URL"
            )
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()

    def answer(self, question: str) -> str:
        try:
            response = self.session.post(
                self.url, json={"question": question}, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise AnswerServiceUnavailable(
                f"the answer service did not reply within {self.timeout:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise AnswerServiceUnavailable(
                f"the answer service cannot be reached: {type(exc).__name__}"
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise AnswerServiceUnavailable(
                f"the answer service answered HTTP {response.status_code}"
            )
        if response.status_code != 200:
            raise AnswerServiceError(f"the answer service answered HTTP {response.status_code}")
        try:
            answer = response.json()["answer"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AnswerServiceError(
                'the answer service did not send JSON with an "answer"'
            ) from exc
        if not isinstance(answer, str) or not answer.strip():
            raise AnswerServiceError("the answer service sent an empty answer")
        return answer.strip()

    def close(self) -> None:
        self.session.close()


def make_answerer(settings: DocumentSettings) -> Answerer:
    """The answerer ``WEBAPP_DOCUMENTS_ANSWERER`` names."""
    if settings.answerer == "http":
        return HttpAnswerer(settings.answerer_url, settings.answerer_timeout)
    return OfflineAnswerer()
