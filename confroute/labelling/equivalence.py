"""Which answers mean the same: one cluster id per answer (-1 = an answer that could not be
parsed). Three ways, all behind one `Equivalence` protocol and one spec (`make_equivalence`):

- `exact`: equal canonical values (numeric / option letter / normalised exact match, no model).
- `nli:<checkpoint>`: bidirectional entailment under any transformers NLI checkpoint with the
  question prepended (Kuhn et al., ICLR 2023).
- `llm:<model>@<base_url>`: bidirectional entailment judged by an LLM over any OpenAI-compatible
  endpoint, with the prompt of Farquhar et al. (Nature 630, 2024), for free text when no NLI
  checkpoint is at hand. Verdicts are batched (many requests in flight) and cached on disk, so
  a pair is asked once across prompts and runs, and an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from confroute.errors import ConfigError, require

INVALID = -1
"""Cluster id of an answer that could not be parsed."""


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
        def same(a: str, b: str) -> bool:
            first, second = f"{question} {a}", f"{question} {b}"
            return all(self.entails([(first, second), (second, first)]))

        return greedy_clusters(answers, same)


def greedy_clusters(answers: Sequence[str | None], same: Any) -> list[int]:
    """Cluster ids by the greedy rule of Kuhn et al. / Farquhar et al.: each answer joins the
    first cluster whose representative (its first member) it is equivalent to, else starts a
    new one. `same(a, b)` -> bool decides equivalence; equal strings are never asked."""
    reps: list[str] = []
    ids: list[int] = []
    for answer in answers:
        if answer is None:
            ids.append(INVALID)
            continue
        found = next((k for k, rep in enumerate(reps) if rep == answer or same(rep, answer)),
                     None)
        if found is None:
            reps.append(answer)
            found = len(reps) - 1
        ids.append(found)
    return ids


# --- LLM-judged bidirectional entailment --------------------------------------------------------

ENTAILMENT_PROMPT = (
    "We are evaluating answers to the question {question}\n"
    "Here are two possible answers:\n"
    "Possible Answer 1: {first}\nPossible Answer 2: {second}\n"
    "Does Possible Answer 1 semantically entail Possible Answer 2? "
    "Respond with entailment, contradiction, or neutral.")
"""The entailment prompt of Farquhar et al. (Nature 2024), `semantic_uncertainty` code base."""
PROMPT_VERSION = 1
"""Bump when ENTAILMENT_PROMPT or the verdict parsing changes: cached verdicts then no longer
apply (the version is part of every cache key)."""
_VERDICT = re.compile(r"\b(entailment|contradiction|neutral)\b", re.IGNORECASE)
VERDICT_WINDOW = 30
"""Only a reply's first 30 characters are read, as Farquhar et al. do: a model that restates
the instruction ("... respond with entailment, contradiction, or neutral") gave no verdict."""


def parse_verdict(text: str) -> str | None:
    """The first of entailment / contradiction / neutral named in the first `VERDICT_WINDOW`
    characters of a reply, lower case; None when none is named there (the caller counts it
    and treats it as not entailed: never guessed)."""
    found = _VERDICT.search((text or "").strip()[:VERDICT_WINDOW])
    return found.group(1).lower() if found else None


def pair_key(model: str, question: str, first: str, second: str) -> str:
    """Cache key of one unordered answer pair: sha256 of prompt version, model, question and the
    two answers in sorted order (both directions are asked and stored together)."""
    a, b = sorted((first, second))
    blob = json.dumps([PROMPT_VERSION, model, question, a, b], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def default_entailment_cache() -> Path:
    """`$CONFROUTE_CACHE/entailment.jsonl` (default ~/.cache/confroute): shared by every run."""
    from confroute.labelling.local import default_cache_dir

    return default_cache_dir() / "entailment.jsonl"


class LlmEquivalence:
    """Bidirectional entailment judged by an LLM behind an OpenAI-compatible endpoint.

    Two answers to a question share a cluster when the LLM says each entails the other (both
    verdicts "entailment"; Farquhar et al. 2024, strict variant). Replies are read by
    `parse_verdict`; a reply naming no verdict counts as not entailed and is counted in
    `stats["unparsed"]`. Verdicts live in a `JsonlStore` keyed by `pair_key`, so each pair is
    asked once, across prompts, runs and interrupted runs (the store is written after every
    chunk of `chunk` pairs). `prepare` asks every pair a set of prompts needs in one batch,
    `concurrency` requests in flight; `cluster` then reads the cache.

    Raises `LLMError` (from `confroute.llm_client`) when the endpoint fails after its retries.
    """

    def __init__(self, endpoint: Any, cache: str | Path | None = None, max_tokens: int = 8,
                 chunk: int = 256) -> None:
        from confroute.labelling.store import JsonlStore
        from confroute.llm_client import LLMClient

        self.endpoint = endpoint
        self.client = LLMClient(endpoint)
        self.name = f"llm:{endpoint.model}@{endpoint.base_url}"
        self.max_tokens, self.chunk = max_tokens, max(1, chunk)
        # the prompt version is in every key, not in the store's settings line: after a bump
        # old verdicts are simply not found, and the same file keeps serving both versions
        self.store = JsonlStore(cache or default_entailment_cache(), {"kind": "llm_entailment"})
        self.stats = {"requests": 0, "cached_pairs": 0, "unparsed": 0}

    @staticmethod
    def _pairs(answers: Sequence[str | None]) -> list[tuple[str, str]]:
        values = list(dict.fromkeys(a for a in answers if a is not None))
        return [(a, b) for i, a in enumerate(values) for b in values[i + 1:]]

    def prepare(self, items: Sequence[tuple[str, Sequence[str | None]]]) -> None:
        """Ask, in batches, every uncached pair of distinct answers of every (question,
        answers) item, both directions (N distinct answers: N(N-1) requests, 20 for N = 5;
        equal strings are never asked); store each pair's verdicts as its chunk finishes."""
        todo: dict[str, tuple[str, str, str]] = {}
        for question, answers in items:
            for a, b in self._pairs(answers):
                key = pair_key(self.endpoint.model, question, a, b)
                if key in self.store:
                    self.stats["cached_pairs"] += 1
                elif key not in todo:
                    low, high = sorted((a, b))
                    todo[key] = (question, low, high)
        keys = list(todo)
        for start in range(0, len(keys), self.chunk):
            self._ask([(k, *todo[k]) for k in keys[start:start + self.chunk]])

    def _ask(self, jobs: Sequence[tuple[str, str, str, str]]) -> None:
        from confroute.llm_client import message_text

        messages = []
        for _, question, a, b in jobs:
            for first, second in ((a, b), (b, a)):
                text = ENTAILMENT_PROMPT.format(question=question, first=first, second=second)
                messages.append([{"role": "user", "content": text}])
        replies = [message_text(c) for c in self.client.chat_many(
            messages, temperature=0.0, max_tokens=self.max_tokens)]
        self.stats["requests"] += len(messages)
        records = []
        for i, (key, question, a, b) in enumerate(jobs):
            forward, backward = replies[2 * i], replies[2 * i + 1]
            verdicts = [parse_verdict(forward), parse_verdict(backward)]
            self.stats["unparsed"] += sum(v is None for v in verdicts)
            records.append({"key": key, "model": self.endpoint.model, "question": question,
                            "answers": [a, b], "replies": [forward, backward],
                            "verdicts": verdicts})
        self.store.add(records)

    def equivalent(self, question: str, first: str, second: str) -> bool:
        """Both directions judged "entailment" (asks the endpoint if the pair is not cached)."""
        key = pair_key(self.endpoint.model, question, first, second)
        if key not in self.store:
            self.prepare([(question, [first, second])])
        return self.store.records[key]["verdicts"] == ["entailment", "entailment"]

    def cluster(self, question: str, answers: Sequence[str | None]) -> list[int]:
        self.prepare([(question, answers)])
        return greedy_clusters(answers, lambda a, b: self.equivalent(question, a, b))


def parse_llm_spec(spec: str) -> tuple[str, str]:
    """`llm:<model>@<base_url>` -> (model, base_url); the last `@` splits (model names may
    hold one, URLs may not before the host)."""
    body = spec[4:]
    model, sep, url = body.rpartition("@")
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise ConfigError(f"LLM equivalence spec must be 'llm:<model>@<base_url>', e.g. "
                          f"'llm:gpt-4o-mini@https://api.openai.com/v1'; found {spec!r}")
    return model, url


def make_equivalence(spec: str, device: str = "cpu", cache: str | Path | None = None,
                     **endpoint: Any) -> Equivalence:
    """`exact`, `nli:<model name or path>` or `llm:<model>@<base_url>`.

    For `llm:`, `cache` is the verdict store (default `default_entailment_cache()`) and
    `endpoint` holds further `EndpointConfig` fields (api_key_env, concurrency, timeout_s,
    max_retries). Raises ConfigError for an unknown spec or bad endpoint settings.
    """
    if spec == "exact":
        return ExactEquivalence()
    if spec.startswith("nli:") and len(spec) > 4:
        return NliEquivalence(spec[4:], device)
    if spec.startswith("llm:"):
        from confroute.llm_client import EndpointConfig

        model, url = parse_llm_spec(spec)
        return LlmEquivalence(EndpointConfig(base_url=url, model=model, **endpoint), cache)
    raise ConfigError(f"equivalence must be 'exact', 'nli:<model>' or 'llm:<model>@<base_url>'; "
                      f"found {spec!r}")
