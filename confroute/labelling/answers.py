"""What an answer claims: a number, an option letter or normalised text, and whether it matches
a gold answer. Answers that cannot be parsed give None, never a guess.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
from typing import Literal

from confroute.errors import ConfigError

AnswerType = Literal["number", "choice", "text"]
_NUMBER = r"-?\d+(?:\.\d+)?"


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a sampled answer claims: a canonical value, or None when it cannot be parsed."""

    value: str | None
    truncated: bool = False
    """The answer hit the token limit (its value, if any, was still parsed)."""


def extract_answer(text: str, answer_type: AnswerType = "text", choices: str | None = None,
                   truncated: bool = False) -> Answer:
    """Reduce one answer to a canonical value for its answer type."""
    if answer_type == "number":
        value = _number(text)
    elif answer_type == "choice":
        value = _choice(text, choices or "ABCD")
    elif answer_type == "text":
        value = normalise_text(text) or None
    else:
        raise ConfigError(f"answer_type must be number, choice or text; found {answer_type!r}")
    return Answer(value, truncated)


def canonical_number(value: float) -> str:
    """12.0 -> "12", 0.5 -> "0.5": equal numbers get equal strings."""
    if not math.isfinite(value):
        return str(value)
    rounded = round(value, 6)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def _number(text: str) -> str | None:
    """The number an answer commits to.

    Small models often restate the problem ("10 + 38 = 58") or trail off ("568, which is 568 -
    20 ="): the number after the last `=` wins when there is one, else the first number.
    """
    clean = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.replace("$", ""))
    after_equals = re.findall(rf"=\s*({_NUMBER})", clean)
    found = after_equals[-1:] or re.findall(_NUMBER, clean)[:1]
    return canonical_number(float(found[0])) if found else None


def _choice(text: str, letters: str) -> str | None:
    """The option letter an answer picks: a leading letter ("B", "B.", "(B)") or "answer is B"."""
    allowed = re.escape(letters)
    stripped = text.strip().lstrip(":*\"'(").strip()
    lead = re.match(rf"([{allowed}])(?:[.):,]|\s|$)", stripped)
    if lead:
        return lead.group(1)
    stated = re.search(rf"(?:answer|option) is:?\s*\(?([{allowed}])\b", text)
    return stated.group(1) if stated else None


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise_text(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation or articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def answers_match(value: str | None, gold: str | None, answer_type: AnswerType) -> bool | None:
    """Correctness against a gold answer; None when there is no gold answer."""
    if gold is None:
        return None
    if value is None:
        return False
    if answer_type == "number":
        gold_value = _number(str(gold))
        if gold_value is None:
            return None
        return math.isclose(float(value), float(gold_value), rel_tol=1e-6, abs_tol=1e-9)
    if answer_type == "choice":
        return value == str(gold).strip().upper()
    return value == normalise_text(str(gold))
