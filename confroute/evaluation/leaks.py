"""Leak check: no training prompt may repeat, or nearly repeat, a prompt a router is scored on.

Two tests, both against every probe prompt (e.g. the common-sense suite and its held-out set):
- exact: after `normalise` (case, whitespace and punctuation folded), the same text, or a
  training prompt of at most `WRAPPER_WORDS` words that contains a probe of at least
  `CONTAINED_WORDS` words whole (the probe wrapped in a greeting or a short chat; a long
  passage that happens to hold "thank you so much" is no copy of that probe);
- near: cosine similarity of MiniLM sentence embeddings (mean-pooled, unit length; the
  embeddings of `confroute.evaluation.embeddings`) at or above `threshold`. 0.9 is the default
  because paraphrases of one question ("What is the capital of France?" / "Which city is the
  capital of France?") score about 0.9 and above, while two different questions of one template
  ("What is 12 + 30?" / "What is 47 + 19?") can also reach 0.9: such a hit is reported for a
  person to read, not dropped silently.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_PUNCT = re.compile(r"[^\w\s+\-*/=<>%^]+")  # arithmetic operators are content
_SPACE = re.compile(r"\s+")
NEAR_THRESHOLD = 0.9
CONTAINED_WORDS = 4
WRAPPER_WORDS = 80


def normalise(text: str) -> str:
    """NFKC, lower case, punctuation (not arithmetic operators) removed, whitespace collapsed:
    "Hi!" and "hi" match, "7 + 8" and "7 * 8" do not."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", folded)).strip()


@dataclasses.dataclass(frozen=True)
class Leak:
    """One training prompt too close to a probe prompt: `kind` is `exact` or `near`."""

    kind: str
    probe: str
    train: str
    train_set: str
    cosine: float


def exact_leaks(train: dict[str, Sequence[str]], probes: Sequence[str]) -> list[Leak]:
    """Training prompts (`{set name: prompts}`) equal to a probe after `normalise`, or of at
    most `WRAPPER_WORDS` words holding a probe of >= `CONTAINED_WORDS` words whole (between
    word boundaries)."""
    wanted = {normalise(p): p for p in probes}
    long = [(key, re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")) for key in wanted
            if len(key.split()) >= CONTAINED_WORDS]
    leaks = []
    for name, texts in train.items():
        for text in texts:
            key = normalise(text)
            hit = key if key in wanted else None
            if hit is None and len(key.split()) <= WRAPPER_WORDS:
                hit = next((k for k, pattern in long if k in key and pattern.search(key)), None)
            if hit is not None:
                leaks.append(Leak("exact", wanted[hit], text, name, 1.0))
    return leaks


def near_leaks(train: dict[str, Sequence[str]], probes: Sequence[str],
               threshold: float = NEAR_THRESHOLD, cache_dir: str | Path | None = None,
               ) -> list[Leak]:
    """Per probe, its most similar training prompt when their MiniLM cosine >= `threshold`.

    Embeds every text once (minutes for tens of thousands of prompts on 2 CPU cores; pass
    `cache_dir` to reuse them). Needs the `train` extra (torch, transformers)."""
    from confroute.evaluation.embeddings import embed

    probe_vectors = embed(list(probes), cache_dir=cache_dir)
    leaks = []
    for name, texts in train.items():
        unique = list(dict.fromkeys(texts))
        vectors = embed(unique, cache_dir=cache_dir)
        similarity = probe_vectors @ vectors.T  # unit vectors: the dot product is the cosine
        best = similarity.argmax(axis=1)
        for i, j in enumerate(best):
            if similarity[i, j] >= threshold:
                leaks.append(Leak("near", probes[i], unique[j], name, float(similarity[i, j])))
    return sorted(leaks, key=lambda leak: -leak.cosine)


def nearest(train: dict[str, Sequence[str]], probes: Sequence[str],
            cache_dir: str | Path | None = None) -> np.ndarray:
    """The highest cosine of each probe to any training prompt, float [len(probes)]: the
    distribution a threshold is read against."""
    from confroute.evaluation.embeddings import embed

    probe_vectors = embed(list(probes), cache_dir=cache_dir)
    top = np.full(len(probes), -1.0)
    for texts in train.values():
        vectors = embed(list(dict.fromkeys(texts)), cache_dir=cache_dir)
        top = np.maximum(top, (probe_vectors @ vectors.T).max(axis=1))
    return top
