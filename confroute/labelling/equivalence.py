"""Which answers mean the same: one cluster id per answer (-1 = an answer that could not be
parsed). Equal canonical values (numeric / option letter / normalised exact match, no model
needed), or bidirectional entailment under any transformers NLI checkpoint with the question
prepended (Kuhn et al., ICLR 2023).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
