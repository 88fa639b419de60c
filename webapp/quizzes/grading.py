"""Grading, as pure functions: no database, no Flask, no broker (unit-tested on their own).

* A multiple-choice answer is right when it is exactly the correct choice (the form
  sends the choice's text, one of the question's ``choices``).
* A short answer is right when its *normalized* form equals the normalized form of one
  of the accepted answers. Normalizing folds case (``casefold``) and Unicode
  compatibility forms (NFKC), and drops every punctuation mark and every space, so
  ``" Dead-Letter  Exchange! "`` matches ``"dead letter exchange"``. (It also makes
  ``3.14`` match ``314``: write accepted answers that do not rely on punctuation.)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def normalize(text: str) -> str:
    """``text`` without case, punctuation or spaces, for comparing short answers."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in folded if not ch.isspace() and not unicodedata.category(ch).startswith("P")
    )


@dataclass(frozen=True, slots=True)
class Key:
    """What grading needs to know of one question."""

    question_id: int
    kind: str  # "choice" or "short"
    accepted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Graded:
    """The outcome: which questions were right, and the score."""

    correct: dict[int, bool]  # question id -> right?

    @property
    def score(self) -> int:
        return sum(self.correct.values())

    @property
    def total(self) -> int:
        return len(self.correct)

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.total if self.total else 0.0


def is_correct(key: Key, given: str | None) -> bool:
    """Whether ``given`` answers the question right (None or blank is wrong)."""
    if given is None or not given.strip():
        return False
    if key.kind == "choice":
        return given in key.accepted
    if key.kind == "short":
        wanted = normalize(given)
        return bool(wanted) and any(wanted == normalize(a) for a in key.accepted)
    raise ValueError(f"unknown question kind {key.kind!r}")


def grade(keys: Iterable[Key], answers: Mapping[int, str]) -> Graded:
    """Grade ``answers`` (question id -> what was given) against every question in ``keys``;
    an unanswered question counts as wrong."""
    return Graded({key.question_id: is_correct(key, answers.get(key.question_id)) for key in keys})


def passed(score: int, total: int, pass_mark: int) -> bool:
    """Whether ``score`` of ``total`` reaches ``pass_mark`` percent (the SQL uses the same
    integer comparison: ``score * 100 >= pass_mark * total``)."""
    return total > 0 and score * 100 >= pass_mark * total


def bucket(score: int, total: int) -> int:
    """The 10 % bucket (0-9) of a score: ``floor(10 * score / total)``, 100 % in bucket 9."""
    if total <= 0:
        raise ValueError("a quiz without questions has no score")
    return min(score * 10 // total, 9)


def missing(question_ids: Sequence[int], answers: Mapping[int, str]) -> list[int]:
    """The questions (in order) that ``answers`` leaves blank."""
    return [qid for qid in question_ids if not (answers.get(qid) or "").strip()]
