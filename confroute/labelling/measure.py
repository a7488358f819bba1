"""Measuring stored samples: answers -> meaning clusters -> every semantic-entropy variant,
plus the greedy answer's correctness and log-prob. No generation: a label rule or an SE variant
can be re-run from the store without sampling again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

from confroute.labelling.answers import AnswerType


def store_key(role: str, prompt_id: Any) -> str:
    """The store key of one prompt's samples from one model role."""
    return f"{role}:{prompt_id}"


@dataclasses.dataclass
class MeasureConfig:
    """How samples become semantic entropy."""

    equivalence: str = "exact"
    """`exact` (numeric / option letter / normalised text), `nli:<model name or path>` or
    `llm:<model>@<base_url>` (LLM-judged entailment, verdicts cached on disk)."""
    invalid: Literal["drop", "cluster"] = "drop"
    """Unparseable answers: left out of the entropy, or one shared "no answer" cluster."""
    normalise_length: bool = True
    """Sequence likelihood = mean token log-prob (summed log-probs let one sample dominate)."""
    se: Literal["discrete", "weighted", "paper"] = "paper"
    """Which variant becomes `se_<role>` (all are stored). `paper` by default: in the label study
    (bench/results/labels.md) its edge_se label trained the router with the highest pooled AUROC
    for SmolLM2's held-out errors among the SE variants, on the 1,500-prompt table (0.848 vs
    0.829) and the 7,335-prompt one (0.713 vs 0.710 / 0.708), though the raw outcome beat every
    SE label on the latter. Falls back to `discrete` for a backend without log-probs."""
    choice_se: Literal["samples", "letters"] = "samples"
    """Multiple-choice prompts: SE of the samples, or the exact entropy of the letters' probs."""


def measure(rows: Sequence[dict[str, Any]], records: dict[str, dict[str, Any]], role: str,
            cfg: MeasureConfig, equivalence: Any | None = None,
            prefix: str | None = None, stored_as: str | None = None) -> list[dict[str, Any]]:
    """Evidence columns `*_<role>` for every row that has a stored record for `role`.

    `stored_as`: the role the records are keyed by in their store, when it is not `role` (a
    pair store's `edge:<id>` measured as a ladder model's evidence).
    `prefix`: the sampling `answer_prefix` the answers continue ("The answer is"); answers are
    read with it in front, so "4. He has 8 - 4 = 2" commits to 4, not 2."""
    from confroute.labelling.equivalence import make_equivalence

    equivalence = equivalence or make_equivalence(cfg.equivalence)
    key = stored_as or role
    if hasattr(equivalence, "prepare"):  # LLM entailment: every prompt's pairs in one batch
        found = [(row, records[store_key(key, row["id"])]) for row in rows
                 if store_key(key, row["id"]) in records]
        equivalence.prepare([(str(row["prompt"]), _answer_values(row, rec, prefix))
                             for row, rec in found])
    out = []
    for row in rows:
        record = records.get(store_key(key, row["id"]))
        if record is not None:
            out.append(_measure_one(row, record, role, cfg, equivalence, prefix))
    return out


def _answer_values(row: dict[str, Any], record: dict[str, Any],
                   prefix: str | None) -> list[str | None]:
    """The parsed value of each stored sample (what clustering compares)."""
    return [a.value for a in _parsed(row, record, prefix)]


def _parsed(row: dict[str, Any], record: dict[str, Any], prefix: str | None) -> list[Any]:
    from confroute.labelling.answers import extract_answer

    kind: AnswerType = row.get("answer_type") or "text"
    return [extract_answer(s["text"], kind, row.get("choices"), s["finish"] == "length", prefix)
            for s in record["samples"]]


def _measure_one(row: dict[str, Any], record: dict[str, Any], role: str, cfg: MeasureConfig,
                 equivalence: Any, prefix: str | None = None) -> dict[str, Any]:
    from confroute.labelling.answers import answers_match
    from confroute.labelling.entropy import semantic_entropy

    kind: AnswerType = row.get("answer_type") or "text"
    choices = row.get("choices")
    gold = row.get("answer")
    samples = record["samples"]
    parsed = _parsed(row, record, prefix)
    values = [a.value for a in parsed]
    ids = equivalence.cluster(str(row["prompt"]), values)
    logprobs = [s.get("logprobs") for s in samples]
    norm = semantic_entropy(ids, logprobs, cfg.invalid, cfg.normalise_length)
    summed = semantic_entropy(ids, logprobs, cfg.invalid, normalise=False)
    r = role
    ev: dict[str, Any] = {
        f"samples_{r}": [s["text"] for s in samples],
        f"logprobs_{r}": logprobs,
        f"answers_{r}": values,
        f"clusters_{r}": ids,
        f"cluster_counts_{r}": norm.cluster_counts,
        f"n_clusters_{r}": norm.n_clusters,
        f"n_invalid_{r}": norm.n_invalid,
        f"n_truncated_{r}": sum(a.truncated for a in parsed),
        f"se_{r}_discrete": norm.discrete,
        f"se_{r}_weighted": norm.weighted,
        f"se_{r}_paper": norm.paper,
        f"se_{r}_weighted_sum": summed.weighted,
        f"se_{r}_paper_sum": summed.paper,
    }
    ev[f"se_{r}"] = ev[f"se_{r}_{cfg.se}"]
    ev.update(_letter_evidence(record.get("choice_logprobs"), r, gold, cfg))
    if ev[f"se_{r}"] is None:  # no log-probs from this backend: fall back, and say so
        ev[f"se_{r}"] = norm.discrete
    ev.update(_greedy_evidence(record.get("greedy"), r, kind, choices, gold, prefix))
    hits = [answers_match(v, gold, kind) for v in values]
    if gold is not None and None not in hits:
        ev[f"sample_accuracy_{r}"] = sum(bool(h) for h in hits) / len(hits)
    return {"id": str(row["id"]), **ev}


def _letter_evidence(letters: dict[str, float] | None, r: str, gold: Any,
                     cfg: MeasureConfig) -> dict[str, Any]:
    """Multiple choice: the letters' entropy and correctness (and `se_<role>` if chosen)."""
    from confroute.labelling.answers import answers_match
    from confroute.labelling.entropy import choice_entropy

    if not letters:
        return {}
    ev: dict[str, Any] = {}
    ev[f"se_{r}_letters"], best = choice_entropy(letters)
    ev[f"choice_logprobs_{r}"] = json.dumps(letters)
    ev[f"correct_{r}_letters"] = _as_float(answers_match(best, gold, "choice"))
    if cfg.choice_se == "letters":
        ev[f"se_{r}"] = ev[f"se_{r}_letters"]
    return ev


def _greedy_evidence(greedy: dict[str, Any] | None, r: str, kind: AnswerType, choices: Any,
                     gold: Any, prefix: str | None) -> dict[str, Any]:
    """The greedy answer, its sequence log-prob (the baseline confidence) and correctness."""
    from confroute.labelling.answers import answers_match, extract_answer
    from confroute.labelling.entropy import sequence_logprob

    if not greedy:
        return {}
    answer = extract_answer(greedy["text"], kind, choices, prefix=prefix)
    return {f"greedy_{r}": greedy["text"],
            f"greedy_logprob_{r}": (sequence_logprob(greedy["logprobs"])
                                    if greedy.get("logprobs") else None),
            f"correct_{r}": _as_float(answers_match(answer.value, gold, kind))}


def _as_float(value: bool | None) -> float | None:
    return None if value is None else float(value)


