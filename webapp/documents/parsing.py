"""Find the questions in a question paper's text (pure functions, no I/O).

A question starts at a line that is

* numbered: ``1.``, ``1)``, ``1:``, ``Q1:``, ``Q1.``, ``Question 1:`` (also ``Q 1)``);
* a Markdown heading that is numbered or ends with ``?`` (``## 3. Why ...?``,
  ``### Question 2`` with the question in the paragraph below it); other headings are
  section titles and are skipped;
* a Markdown list item (``-``, ``*``, ``+``), when the paper has no numbered questions
  (in a numbered paper, list items continue the question above, e.g. its choices).

A question runs on over the following lines until a blank line, another question or a
heading. A paper with none of these falls back to its paragraphs that end with ``?``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_NUMBERED = re.compile(
    r"^\s{0,3}(?:(?:q|question)\s*)?(?P<num>\d{1,3})\s*[.):]\s+(?P<text>\S.*)$", re.IGNORECASE
)
_LABEL_ONLY = re.compile(r"^(?:(?:q|question)\s*)?(?P<num>\d{1,3})\s*[.):]?$", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(?P<indent>\s*)[-*+]\s+(?P<text>\S.*)$")
_SPACES = re.compile(r"\s+")

NO_QUESTIONS = (
    "no questions found: number them ('1.', '1)', 'Q1:' or 'Question 1:'), "
    "or write them as Markdown headings or list items."
)


class NoQuestionsFound(ValueError):
    """The text has no question this parser recognises."""


@dataclass(frozen=True)
class Question:
    """One question: its place in the paper (1, 2, ...), its label and its text."""

    position: int
    label: str
    text: str


@dataclass
class _Draft:
    label: str | None
    parts: list[str]
    numbered: bool
    #: Still collecting the lines of its first paragraph (a blank line ends it).
    open: bool = True


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def extract_questions(text: str) -> list[Question]:
    """The questions of ``text`` in order; NoQuestionsFound if there are none."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    has_numbers = any(_is_numbered(line) for line in lines)
    drafts: list[_Draft] = []
    current: _Draft | None = None

    def start(label: str | None, first: str, numbered: bool) -> _Draft:
        draft = _Draft(label, [first] if first else [], numbered)
        drafts.append(draft)
        return draft

    for line in lines:
        if not line.strip():
            if current is not None and current.parts:
                current.open = False
            continue
        heading = _HEADING.match(line)
        if heading:
            current = _from_heading(_clean(heading["text"]), start)
            continue
        numbered = _NUMBERED.match(line)
        if numbered:
            current = start(numbered["num"], _clean(numbered["text"]), True)
            continue
        bullet = _BULLET.match(line)
        if bullet and not has_numbers and not bullet["indent"]:
            current = start(None, _clean(bullet["text"]), False)
            continue
        if current is not None and current.open:
            current.parts.append(_clean(bullet["text"] if bullet else line))
    questions = [d for d in drafts if d.parts]
    if not questions:
        questions = _question_paragraphs(lines)
    if not questions:
        raise NoQuestionsFound(NO_QUESTIONS)
    result = []
    for position, draft in enumerate(questions, 1):
        label = f"Q{draft.label}" if draft.label else f"Q{position}"
        result.append(Question(position, label, " ".join(draft.parts)))
    return result


def _is_numbered(line: str) -> bool:
    """Whether a line starts a numbered question (plain, or as a heading)."""
    heading = _HEADING.match(line)
    if heading:
        text = _clean(heading["text"])
        return bool(_LABEL_ONLY.match(text) or _NUMBERED.match(text))
    return bool(_NUMBERED.match(line))


def _from_heading(text: str, start: Callable[[str | None, str, bool], _Draft]) -> _Draft | None:
    """A question from a heading (numbered, or ending with '?'), else None (a title)."""
    label_only = _LABEL_ONLY.match(text)
    if label_only:  # "## Question 2": the question is the paragraph below
        return start(label_only["num"], "", True)
    numbered = _NUMBERED.match(text)
    if numbered:
        return start(numbered["num"], _clean(numbered["text"]), True)
    if text.endswith("?"):
        return start(None, text, False)
    return None


def _question_paragraphs(lines: list[str]) -> list[_Draft]:
    """Fallback: every paragraph that ends with a question mark."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(_clean(line))
        elif paragraphs[-1]:
            paragraphs.append([])
    return [
        _Draft(None, parts, False)
        for parts in paragraphs
        if parts and " ".join(parts).endswith("?")
    ]
