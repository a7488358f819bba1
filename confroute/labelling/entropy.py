"""Semantic entropy: how much the meanings of a prompt's sampled answers scatter.

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
from collections.abc import Sequence
from typing import Any, Literal

from confroute.errors import ConfigError
from confroute.labelling.equivalence import INVALID

Invalid = Literal["drop", "cluster"]


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
