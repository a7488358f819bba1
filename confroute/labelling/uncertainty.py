"""Semantic entropy: parse answers, cluster them by meaning, and measure how much they scatter.

Answers are first reduced to what they claim (`extract_answer`): a number, an option letter, or
normalised text. Two answers share a meaning when an `Equivalence` says so: equal canonical
values (numeric / option letter / normalised exact match, no model needed), or bidirectional
entailment under any transformers NLI checkpoint with the question prepended (Kuhn et al. 2023).

Answers that cannot be parsed are never silently made into clusters of their own: they get the
cluster id -1, are counted, and `invalid` decides what they mean ("drop": left out of the
entropy; "cluster": they count as one shared "no answer" cluster).

SE variants (natural log), over clusters c with samples s:
- discrete: `-sum_c f_c log f_c`, f_c = share of samples in c (no log-probs needed).
- weighted: `-sum_c p_c log p_c`, p_c = sum_{s in c} p(s|x) normalised over the clusters seen.
- paper: `-(1/|C|) sum_c log p(c|x)` with p(c|x) = sum_{s in c} p(s|x), unnormalised (the
  estimator of Zhang et al. 2025).
p(s|x) is `exp(mean token log-prob)` when length-normalised (the default: with summed log-probs
the shortest answer takes nearly all the weight) or `exp(sum)` otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from confroute.errors import ConfigError, require

AnswerType = Literal["number", "choice", "text"]
Invalid = Literal["drop", "cluster"]
INVALID = -1
"""Cluster id of an answer that could not be parsed."""

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


# --- equivalence ------------------------------------------------------------------------------


class Equivalence(Protocol):
    """Decides which answers mean the same; returns one cluster id per answer (-1 = invalid)."""

    name: str

    def cluster(self, question: str, answers: Sequence[str | None]) -> list[int]: ...


class ExactEquivalence:
    """Equal canonical values share a cluster (numeric, option letter, normalised exact)."""

    name = "exact"

    def cluster(self, question: str, answers: Sequence[str | None]) -> list[int]:
        ids: dict[str, int] = {}
        return [INVALID if a is None else ids.setdefault(a, len(ids)) for a in answers]


class NliEquivalence:
    """Bidirectional entailment under a transformers NLI model, question prepended (Kuhn et al.).

    Any sequence-classification checkpoint whose labels include "entailment" works (DeBERTa /
    RoBERTa MNLI, ...). Each answer joins the first cluster whose representative entails it
    and is entailed by it; pairs are cached per question.
    """

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32) -> None:
        transformers = require("transformers", "label")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(model)
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"could not load NLI model '{model}': {exc}") from exc
        self.model.to(device).eval()
        self.device, self.batch_size, self.name = device, batch_size, f"nli:{model}"
        labels = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
        entail = [i for name, i in labels.items() if name.startswith("entail")]
        if not entail:
            raise ConfigError(f"NLI model '{model}' has labels {sorted(labels)}; need one named "
                              "'entailment' (an MNLI/SNLI-style checkpoint)")
        self.entailment = entail[0]

    def entails(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (premise, hypothesis): is entailment the most likely label?"""
        torch = require("torch", "label")
        out: list[bool] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            enc = self.tokenizer([p for p, _ in chunk], [h for _, h in chunk], padding=True,
                                 truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = self.model(**enc).logits
            out += (logits.argmax(-1) == self.entailment).tolist()
        return out

    def cluster(self, question: str, answers: Sequence[str | None]) -> list[int]:
        reps: list[str] = []
        ids: list[int] = []
        for answer in answers:
            if answer is None:
                ids.append(INVALID)
                continue
            text = f"{question} {answer}"
            found = INVALID
            for k, rep in enumerate(reps):
                if rep == text or all(self.entails([(rep, text), (text, rep)])):
                    found = k
                    break
            if found == INVALID:
                reps.append(text)
                found = len(reps) - 1
            ids.append(found)
        return ids


def make_equivalence(spec: str, device: str = "cpu") -> Equivalence:
    """`exact` or `nli:<model name or path>`."""
    if spec == "exact":
        return ExactEquivalence()
    if spec.startswith("nli:") and len(spec) > 4:
        return NliEquivalence(spec[4:], device)
    raise ConfigError(f"equivalence must be 'exact' or 'nli:<model>'; found {spec!r}")


# --- entropy ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Entropy:
    """Every SE variant for one prompt's samples, plus what was counted on the way."""

    discrete: float
    weighted: float | None
    """Likelihood-weighted, normalised cluster probabilities; None without log-probs."""
    paper: float | None
    n_clusters: int
    n_invalid: int
    cluster_counts: list[int]
    """Samples per cluster id 0..k-1 (invalid answers not included)."""


def sequence_logprob(token_logprobs: Sequence[float], normalise: bool = True) -> float:
    """log p(s|x): summed token log-probs, or their mean when length-normalised."""
    if not token_logprobs:
        return 0.0
    total = float(sum(token_logprobs))
    return total / len(token_logprobs) if normalise else total


def semantic_entropy(cluster_ids: Sequence[int],
                     logprobs: Sequence[Sequence[float] | None] | None = None,
                     invalid: Invalid = "drop", normalise: bool = True) -> Entropy:
    """All SE variants from cluster ids (-1 = invalid answer) and per-token log-probs.

    With `invalid="drop"` unparseable answers are left out; if every answer is invalid the
    prompt gets the maximum discrete entropy log(N) (the model gave no answer at all), and no
    likelihood variants. With `invalid="cluster"` they form one shared cluster.
    """
    if invalid not in ("drop", "cluster"):
        raise ConfigError(f"invalid must be 'drop' or 'cluster'; found {invalid!r}")
    ids = list(cluster_ids)
    n_invalid = sum(1 for c in ids if c == INVALID)
    if invalid == "cluster" and n_invalid:
        ids = [max(ids) + 1 if c == INVALID else c for c in ids]
    keep = [i for i, c in enumerate(ids) if c != INVALID]
    counts = _counts([c for c in cluster_ids if c != INVALID])
    if not keep:
        return Entropy(math.log(len(ids)) if ids else 0.0, None, None, 0, n_invalid, counts)
    kept_ids = [ids[i] for i in keep]
    freqs = [n / len(keep) for n in _counts(kept_ids) if n]
    discrete = -sum(f * math.log(f) for f in freqs)
    n_clusters = len(set(kept_ids))
    if logprobs is None or any(logprobs[i] is None for i in keep):
        return Entropy(_clean(discrete), None, None, n_clusters, n_invalid, counts)
    seq = [sequence_logprob(logprobs[i], normalise) for i in keep]  # type: ignore[arg-type]
    cluster_logp = _cluster_logprobs(kept_ids, seq)
    total = _logsumexp(list(cluster_logp.values()))
    weighted = -sum(math.exp(lp - total) * (lp - total) for lp in cluster_logp.values())
    paper = -sum(cluster_logp.values()) / len(cluster_logp)
    return Entropy(_clean(discrete), _clean(weighted), paper, n_clusters, n_invalid, counts)


def choice_entropy(letter_logprobs: dict[str, float]) -> tuple[float, str]:
    """Exact SE for a multiple-choice prompt: entropy of the option letters' probabilities
    (renormalised over the options; each letter is one meaning) and the most likely letter."""
    if not letter_logprobs:
        raise ConfigError("choice_entropy needs at least one option letter")
    total = _logsumexp(list(letter_logprobs.values()))
    probs = {k: math.exp(v - total) for k, v in letter_logprobs.items()}
    entropy = -sum(p * math.log(p) for p in probs.values() if p > 0)
    return _clean(entropy), max(probs, key=probs.__getitem__)


def _counts(ids: Sequence[int]) -> list[int]:
    if not ids:
        return []
    counts = [0] * (max(ids) + 1)
    for c in ids:
        counts[c] += 1
    return counts


def _cluster_logprobs(ids: Sequence[int], seq: Sequence[float]) -> dict[int, float]:
    grouped: dict[int, list[float]] = {}
    for c, lp in zip(ids, seq, strict=True):
        grouped.setdefault(c, []).append(lp)
    return {c: _logsumexp(v) for c, v in grouped.items()}


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _clean(value: float) -> float:
    """-0.0 and 1e-17 from rounding are 0: a model that always agrees has SE exactly 0."""
    return 0.0 if abs(value) < 1e-12 else value


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is absent."""
    pos = [s for s, y in zip(scores, positives, strict=True) if y]
    neg = [s for s, y in zip(scores, positives, strict=True) if not y]
    if not pos or not neg:
        return None
    ranked = sorted((s, i) for i, s in enumerate(list(pos) + list(neg)))
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[ranked[k][1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(ranks[:len(pos)])
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """Mean, quartiles and the share of exact zeros of an SE column (for cards and reports)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    q = lambda f: ordered[min(len(ordered) - 1, int(f * (len(ordered) - 1) + 0.5))]  # noqa: E731
    return {"n": len(ordered), "mean": round(sum(ordered) / len(ordered), 4),
            "q25": round(q(0.25), 4), "median": round(q(0.5), 4), "q75": round(q(0.75), 4),
            "max": round(ordered[-1], 4),
            "zero_share": round(sum(v == 0 for v in ordered) / len(ordered), 4)}
