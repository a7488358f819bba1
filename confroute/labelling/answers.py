"""What an answer claims: a number, an option letter or normalised text, and whether it matches
a gold answer. Answers that cannot be parsed give None, never a guess.

A model that reasons before answering commits to its final answer, so the answer is read from
the committed part, in this order: `\\boxed{...}` (the last one), `#### x`, the span after the
last "the answer is" / "Answer:" marker (up to the end of that sentence), else the whole text,
where the LAST value stated wins (the first is usually a restated number from the problem).
Inside that part a number that is an operand (`29 * 7`, `8 - 4 = 4`) is never the answer; the
value after `=` / "equals" is. Signs (the unicode minus too), thousands separators, currency,
percentages and trailing units are read here; fractions and LaTeX (`\\frac{1}{2}`, `\\sqrt{2}`)
by HF's math-verify (`parse`), and plain decimals by `float`, which gives the same value without
math-verify's per-call cost (bench/extraction.py times a whole answer).

Small models prompted with an answer prefix ("The answer is") continue it, so their sample
is read with the prefix in front (`prefix=`): "4. Mike has 8 - 4 = 4 marbles" then commits to 4.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
import threading
from typing import Any, Literal

from confroute.errors import ConfigError, DataError

AnswerType = Literal["number", "choice", "text"]

_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
# An answer marker: "the answer is", "final answer:", "Answer =", "answer would be".
_MARKER = re.compile(r"\banswer\b\s*(?:(?:is|was|would be|will be|should be)\b\s*:?|[:=])",
                     re.IGNORECASE)
_HASHES = re.compile(r"####")
_NEW_TURN = re.compile(r"\n\s*(?:Question|Answer|User|Human|Assistant|Q)\s*:|\n\s*==+\s*\w"
                       r"|<\|\w+\|>", re.IGNORECASE)
# The end of the committed sentence: a line break, or . ! ? ; not inside a decimal.
_SENTENCE_END = re.compile(r"\n|[!?;]|\.(?!\d)")
# A value: optional sign and currency, then a LaTeX fraction, a number with thousands
# separators, a decimal, or a plain fraction; then an optional percent sign.
_VALUE = re.compile(
    r"(?<![\w.])(?P<sign>[-+])?(?:[$€£¥]\s?)?"
    r"(?P<num>\\[dt]?frac\s*\{[^{}]*\}\s*\{[^{}]*\}|\\[dt]?frac\d\d"
    r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|\.\d+)"
    r"(?P<pct>\s?%)?")
# An operand: a value followed by an operator and another value, perhaps with unit words between
# ("10 miles / 2 hours = 5", "15 cents - 11 cents"), or "20% of 100"; or preceded by one.
_OPERATOR_AFTER = re.compile(
    r"(?:\s+[A-Za-z]+){0,3}\s*(?:[-+*/×÷^]|x(?=\s*[\d(])|\\times|\\cdot)\s*\(?\s*[-$\d.\\]"
    r"|(?<=%)\s*of\b")
_OPERATOR_BEFORE = re.compile(
    r"(?:[-+*/×÷^]|(?<=[\d)\s])x|\\times|\\cdot|%\s*of)\s*\(?\s*[$€£¥]?\s*$")
_PLAIN = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)")
_WORDS = {w: i for i, w in enumerate(re.findall(r"\w+", (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty")))}


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a sampled answer claims: a canonical value, or None when it cannot be parsed."""

    value: str | None
    truncated: bool = False
    """The answer hit the token limit (its value, if any, was still parsed)."""


def extract_answer(text: str, answer_type: AnswerType = "text", choices: str | None = None,
                   truncated: bool = False, prefix: str | None = None) -> Answer:
    """Reduce one answer to a canonical value for its answer type.

    `text`: the model's answer (any length; chain of thought allowed). `choices`: the option
    letters of a multiple-choice question ("ABCD", "ABCDEFGHIJ"; default "ABCD"). `prefix`: text
    the answer continues (the sampling `answer_prefix`), read as part of it. Returns
    `Answer(value)`: "12", "0.75", "-5" (numbers), "C" (choice), "eiffel tower" (text), or None.
    Raises ConfigError for an unknown answer type, DataError for an answer that is not text.
    """
    if not isinstance(text, str):
        raise DataError(f"an answer must be text (str); found {type(text).__name__}. Decode "
                        "bytes first, and pass a missing answer as an empty string")
    if prefix:
        text = f"{prefix.rstrip()} {text.lstrip()}"
    if answer_type == "number":
        value = _number(text)
    elif answer_type == "choice":
        value = _choice(text, choices or "ABCD")
    elif answer_type == "text":
        value = _text(text)
    else:
        raise ConfigError(f"answer_type must be number, choice or text; found {answer_type!r}")
    return Answer(value, truncated)


def canonical_number(value: float) -> str:
    """12.0 -> "12", 0.5 -> "0.5": equal numbers get equal strings (6 decimals)."""
    if not math.isfinite(value):
        return str(value)
    rounded = round(value, 6)
    return str(int(rounded)) if rounded == int(rounded) else repr(rounded)


def own_turn(text: str) -> str:
    """`text` up to where the model, after committing to an answer, starts a new turn of a
    made-up dialogue ("\\n\\nQuestion: ...", "\\nAnswer: The answer is (J)", "<|assistant|>"):
    models prompted few-shot often run on, and what follows is not their answer."""
    first = re.search(r"\\boxed\{|####|\banswer\b", text, re.IGNORECASE)
    if first is None:
        return text
    turn = _NEW_TURN.search(text, first.end())
    return text[:turn.start()] if turn else text


def committed_span(text: str) -> tuple[str, bool]:
    """The part of `text` that states the final answer, and whether a marker committed to it
    (`\\boxed{}`, `####`, "the answer is" / "Answer:"); else the whole text and False."""
    text = own_turn(text)
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed, True
    for pattern in (_HASHES, _MARKER):
        matches = list(pattern.finditer(text))
        if matches:
            rest = text[matches[-1].end():]
            end = _SENTENCE_END.search(rest.lstrip(" :*\"'"))
            offset = len(rest) - len(rest.lstrip(" :*\"'"))
            return (rest[:offset + end.start()] if end else rest), True
    return text, False


def _last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None  # unclosed (a truncated answer): not committed


def _number(text: str) -> str | None:
    """The number an answer commits to (see the module docstring), canonical, or None."""
    span, committed = committed_span(text.translate(_MINUS))
    if committed and "\\" in span:  # LaTeX (\sqrt{2}, 3 \times 4 = 12): math-verify reads it
        value = _math_verify(span)
        if value is not None:
            return value
    values = [m for m in _VALUE.finditer(span) if not _is_operand(span, m)]
    if values:
        return _parse_value(values[0] if committed else values[-1])
    if committed:
        words = re.findall(r"[a-z]+", span.lower())
        if words and words[0] in _WORDS:  # "The answer is eight."
            return str(_WORDS[words[0]])
    return None


def _is_operand(span: str, match: re.Match[str]) -> bool:
    """A value inside an expression (`29 * 7`, the 4 of `8 - 4 = 4`) is not an answer."""
    if _OPERATOR_AFTER.match(span, match.end()):
        return True
    before = span[:match.start()]
    return bool(_OPERATOR_BEFORE.search(before)) and not before.rstrip(" ($").endswith("=")


def _parse_value(match: re.Match[str]) -> str | None:
    """A located value -> canonical number: plain decimals by float, the rest by math-verify.
    A percentage keeps its number ("45%" -> "45"): gold answers to "what percent" state it."""
    num = match.group("num").replace(",", "").replace(" ", "")
    sign = -1.0 if match.group("sign") == "-" else 1.0
    if _PLAIN.fullmatch(num):
        return canonical_number(sign * float(num))
    parsed = _math_verify(num)
    return None if parsed is None else canonical_number(sign * float(parsed))


def _math_verify(expression: str) -> str | None:
    """A math expression (fraction, LaTeX) -> canonical number via math-verify, or None."""
    value = _math_verify_value(expression)
    if value is None:
        return None
    try:
        return canonical_number(float(value))
    except (TypeError, ValueError):  # symbolic (free variables): not a number
        return None


def _math_verify_value(expression: str) -> Any | None:
    """math-verify's parse of one expression (its first parsed, not string, result).

    Its timeout uses SIGALRM, which only the main thread may set; elsewhere it runs without one
    (the expression is one short committed value, not a whole response).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    main = threading.current_thread() is threading.main_thread()
    latex = expression if expression.startswith("$") else f"${expression}$"
    found = parse(latex if "\\" in expression else expression,
                  [LatexExtractionConfig(), ExprExtractionConfig()],
                  parsing_timeout=5 if main else None)
    return next((v for v in found if not isinstance(v, str)), None)


_EMPHASIS = re.compile(r"[*_`]+")
# "answer is (C)", "Answer: c", "answer would be option B", "correct option is B", "choice: D"
_CHOICE_MARKER = re.compile(
    r"\b(?:answer\b\s*(?:(?:is|would be|will be|should be)\b\s*:?|[:=])?"
    r"|(?:option|choice)\b[ \t]*(?:(?:is|would be|will be|should be)\b[ \t]*:?|[:=])[ \t]*)"
    r"\s*(?:option|choice|letter)?\s*[(\[]?\s*(?P<letter>[A-Za-z])\s*[)\]]?(?![\w'’])",
    re.IGNORECASE)
SHORT = 200
"""An answer this short (characters) that opens with a letter ("B. dolphin") picks it; a long one
may be a chain of thought that opens with part (a)."""
_HEDGE = re.compile(r"\s*(?:,|/|\bor\b|\band/or\b)\s*[(\[]?[A-Za-z][)\]]?(?![\w'’])")
_VARIABLE = re.compile(r"\s*[=+*/^_<>]|\s*\(\s*[a-z0-9]"
                       r"|\s+(?:is|are)\s+(?:not|incorrect|wrong|false)\b|\s+isn't")
# A bare capital is a choice only right after a choosing word ("it's C", "option C", "so C")
_CHOOSING = re.compile(r"(?:\b(?:is|be|choose|chose|pick|select|with|option|choice|so|"
                       r"answer)|'s|:)\s*$", re.IGNORECASE)
_STATED = re.compile(r"[(\[](?P<paren>[A-Za-z])[)\]]"
                     r"|\b(?:option|choice)\s+(?P<word>[A-Za-z])(?![\w'’])"
                     r"|(?<![\w'’-])(?P<bare>[A-Z])(?![\w'’-])")


def _choice(text: str, letters: str) -> str | None:
    """The option letter an answer commits to, for any option set (`letters`, e.g. "ABCD" or
    "ABCDEFGHIJ"; a letter outside it is no answer): the last "answer is (x)" / "Answer: X" /
    "option X" (any case, markdown emphasis ignored), None when that one hedges ("(G) or (I)");
    else the whole answer is a letter ("a", "**B**", "(c)", "B. dolphin"); else the last letter
    chosen in the last sentence ("I think it's C because ...", "so (B)"), never a variable or
    label (`A = 4`, "Company C covers") or a rejected option ("option D is incorrect"): a chain of
    thought that never commits (often one cut off by a token limit) has no answer, not the
    last option it discussed. (MMLU-Pro's own extractor reads the FIRST "answer is (X)" and
    falls back to the last capital letter anywhere, a guess; bench/extraction.py compares.)"""
    allowed = set(letters.upper())
    plain = _EMPHASIS.sub("", own_turn(text))
    marked = [m for m in _CHOICE_MARKER.finditer(plain) if _letter_ok(plain, m, "letter")
              and m.group("letter").upper() in allowed]
    if marked:
        last = marked[-1]
        return None if _HEDGE.match(plain, last.end()) else last.group("letter").upper()
    lead = re.match(r"[\W_]*([A-Za-z])(?:[\W_]*$|[.):]|\s+-\s)", plain.strip())
    if lead and lead.group(1).upper() in allowed and len(plain.strip()) <= SHORT:
        return lead.group(1).upper()
    sentences = [s for s in _SENTENCE_END.split(plain) if s.strip()]
    last_sentence = sentences[-1] if sentences else ""
    stated = []
    for m in _STATED.finditer(last_sentence):
        letter = m.group("paren") or m.group("word") or m.group("bare")
        if (m.group("bare") and not _CHOOSING.search(last_sentence[:m.start()])) or \
                _VARIABLE.match(last_sentence, m.end()):
            continue
        if letter.upper() in allowed:
            stated.append(m)
    if not stated or re.search(r"(?:\bor|\band|,)\s*$", last_sentence[:stated[-1].start()]):
        return None  # nothing chosen, or a hedge ("(B) or (J)")
    last = stated[-1]
    return (last.group("paren") or last.group("word") or last.group("bare")).upper()


def _letter_ok(text: str, match: re.Match[str], group: str) -> bool:
    """False for a letter that is a word: the article "a"/"A" or pronoun "I" before a lower-case
    word ("A good ...", "I think"), or a lower-case letter not set off by brackets or
    punctuation ("the answer is a bit ...")."""
    letter, end = match.group(group), match.end(group)
    after = text[end:]
    if letter in "aAI" and re.match(r"\s+[a-z]", after):
        return False
    if letter.islower():
        return bool(re.match(r"\s*(?:[).\]:,]|$)", after)) or text[:match.start(group)].rstrip(
            ).endswith(("(", "["))
    return True


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_YES_NO = re.compile(r"(yes|no)\b(?!\s+(?:one|longer|more|less|matter|doubt)\b)")


def normalise_text(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation or articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _text(text: str) -> str | None:
    """A free-text answer: the committed span, normalised; one that opens with yes / no is that
    word ("No, 47 is less than 52." -> "no"), so a yes/no question has two meanings, not many."""
    span, _ = committed_span(text)
    value = normalise_text(span)
    yes_no = _YES_NO.match(value)
    return (yes_no.group(1) if yes_no else value) or None


def answers_match(value: str | None, gold: str | None, answer_type: AnswerType) -> bool | None:
    """Correctness of an extracted `value` against a gold answer; None when there is no gold
    answer (or a number gold that does not parse). Numbers compare with relative tolerance
    1e-6, so "0.5" matches gold "1/2" or "\\frac{1}{2}"; letters ignore case; text is compared
    after `normalise_text` (and the yes/no reduction)."""
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
    return value == _text(str(gold))
