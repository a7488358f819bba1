"""The paper's LLM-as-a-judge comparison of routers at the same CPT point (optional, paid API).

Each router is set to the threshold where it reaches its own CPT(level); on each prompt it then
serves the answer of the model it picked. With one edge and one cloud model there are only two
candidate answers per prompt, so a judge (any OpenAI-compatible chat endpoint) compares the edge
and the cloud answer once per prompt on which the routers disagree; on prompts where they all
picked the same model, that answer is every router's, and all count as best. A router's score is
the % of prompts on which its answer was judged best (a tie verdict counts as best for both
answers). The answer order shown to the judge is randomised per prompt (seeded) against position
bias; verdicts follow MT-Bench's pairwise format ([[A]], [[B]], [[C]] for a tie).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError
from confroute.evaluation import metrics
from confroute.evaluation.groundtruth import GroundTruth
from confroute.llm_client import EndpointConfig, LLMClient, message_text

SYSTEM = ("You are an impartial judge. Compare two AI assistants' answers to the user question "
          "below and decide which one answers it better: correct, helpful, relevant and complete. "
          "Ignore the order of the answers, their length and the assistants' names. Explain "
          "briefly, then give your verdict strictly as \"[[A]]\" if assistant A is better, "
          "\"[[B]]\" if assistant B is better, or \"[[C]]\" for a tie.")
TEMPLATE = ("[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n"
            "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n"
            "[The End of Assistant B's Answer]")
VERDICT = re.compile(r"\[\[([ABC])\]\]")


@dataclasses.dataclass
class PairwiseJudgeConfig:
    """The judge that compares two answers to one prompt (MT-Bench's pairwise format), at
    temperature 0. Not the single-answer rating judge of labelling
    (`confroute.labelling.judge.RatingJudgeConfig`)."""

    endpoint: EndpointConfig
    """The judge model's OpenAI-compatible endpoint, e.g. https://api.openai.com/v1; its
    concurrency bounds the comparisons in flight."""
    max_tokens: int = 512


Ask = Callable[[Sequence[tuple[str, str]]], list[str]]
"""[(system prompt, user prompt), ...] -> the judge's reply texts, in the same order."""


def compare(truth: GroundTruth, scores: Mapping[str, np.ndarray], level: float,
            ask: Ask, seed: int = 0) -> dict[str, Any]:
    """% of prompts on which each router's answer is judged best, each router at CPT(level).

    `scores` maps a router's name to its scores, one per prompt of `truth` (shape [prompts]).
    Every disputed prompt is sent to `ask` in one batch. Returns {"level", "prompts",
    "judged", "verdicts": {"edge", "cloud", "tie"}, "routers": {name: {"cpt",
    "cloud_fraction", "best_pct"}}}. Raises `DataError` when `truth` has no model answers or
    a reply has no verdict, `ConfigError` without routers, and what `ask` raises.
    """
    if truth.answers_edge is None or truth.answers_cloud is None:
        raise DataError(f"ground truth '{truth.name}' has no model answers to judge; the judge "
                        "comparison needs them (GSM8K and MT-Bench have them, MMLU does not)")
    if not scores:
        raise ConfigError("the judge comparison needs at least one router's scores")
    picks, points = {}, {}
    for name, values in scores.items():
        curve = metrics.sweep(values, truth.quality_edge, truth.quality_cloud)
        fraction = metrics.cpt(curve, level)
        picks[name] = _cloud_picks(np.asarray(values, float), fraction)
        points[name] = {"cpt": fraction, "cloud_fraction": float(picks[name].mean())}
    chosen = np.stack(list(picks.values()))  # [routers, prompts], True = cloud answer
    disputed = np.flatnonzero(chosen.any(axis=0) & ~chosen.all(axis=0))
    rng = np.random.default_rng(seed)
    cloud_first = [bool(rng.random() < 0.5) for _ in disputed]
    winners = judge_pairs([(truth.prompts[i], truth.answers_edge[i], truth.answers_cloud[i])
                           for i in disputed], ask, cloud_first)
    best_edge = np.ones(len(truth), dtype=bool)
    best_cloud = np.ones(len(truth), dtype=bool)
    for i, winner in zip(disputed, winners, strict=True):
        best_edge[i], best_cloud[i] = winner in ("edge", "tie"), winner in ("cloud", "tie")
    verdicts = {kind: winners.count(kind) for kind in ("edge", "cloud", "tie")}
    routers = {name: {**points[name], "best_pct": float(100 * np.mean(np.where(
        picks[name], best_cloud, best_edge)))} for name in scores}
    return {"level": level, "prompts": len(truth), "judged": int(len(disputed)),
            "verdicts": verdicts, "routers": routers}


def judge_pair(question: str, edge_answer: str, cloud_answer: str, ask: Ask,
               cloud_first: bool) -> str:
    """'edge', 'cloud' or 'tie' from one judge call (answers shown in the given order)."""
    return judge_pairs([(question, edge_answer, cloud_answer)], ask, [cloud_first])[0]


def judge_pairs(pairs: Sequence[tuple[str, str, str]], ask: Ask,
                cloud_first: Sequence[bool]) -> list[str]:
    """'edge', 'cloud' or 'tie' for each (question, edge answer, cloud answer), from one
    batch to `ask`; `cloud_first[i]` shows pair i's cloud answer as assistant A. Raises
    `DataError` for a reply without a verdict."""
    prompts = pair_prompts(pairs, cloud_first)
    replies = ask(prompts) if prompts else []
    return [read_verdict(reply, first) for reply, first in zip(replies, cloud_first, strict=True)]


def pair_prompts(pairs: Sequence[tuple[str, str, str]], cloud_first: Sequence[bool]
                 ) -> list[tuple[str, str]]:
    """The (system, user) prompt the judge gets for each (question, edge answer, cloud answer);
    `cloud_first[i]` shows pair i's cloud answer as assistant A (callers that ask the judge
    themselves, e.g. asynchronously, pair it with `read_verdict`)."""
    prompts = []
    for (question, edge, cloud), first in zip(pairs, cloud_first, strict=True):
        a, b = (cloud, edge) if first else (edge, cloud)
        prompts.append((SYSTEM, TEMPLATE.format(question=question, answer_a=a, answer_b=b)))
    return prompts


def read_verdict(reply: str, cloud_first: bool) -> str:
    """'edge', 'cloud' or 'tie' from a judge's reply to a `pair_prompts` prompt (its last
    [[A]], [[B]] or [[C]]); raises `DataError` for a reply without one."""
    found = VERDICT.findall(reply or "")
    if not found:
        raise DataError(f"the judge's reply has no verdict [[A]], [[B]] or [[C]]: {reply[:200]!r}")
    verdict = found[-1]
    if verdict == "C":
        return "tie"
    return "cloud" if (verdict == "A") == cloud_first else "edge"


def http_judge(cfg: PairwiseJudgeConfig) -> Ask:
    """An `Ask` backed by `cfg.endpoint` through `confroute.llm_client` (temperature 0, up to
    `endpoint.concurrency` comparisons in flight, the SDK's retries). Raises `LLMError` when
    the endpoint fails after its retries."""
    client = LLMClient(cfg.endpoint)

    def ask(prompts: Sequence[tuple[str, str]]) -> list[str]:
        batch = [[{"role": "system", "content": system}, {"role": "user", "content": user}]
                 for system, user in prompts]
        completions = client.chat_many(batch, temperature=0, max_tokens=cfg.max_tokens)
        return [message_text(c) for c in completions]

    return ask


def _cloud_picks(scores: np.ndarray, fraction: float) -> np.ndarray:
    """The routing at cloud fraction `fraction`: the top round(f * n) scores go to the cloud
    (ties in score broken by prompt order, as a deployed threshold plus tie order would)."""
    if not np.isfinite(fraction):
        fraction = 1.0
    k = int(round(fraction * len(scores)))
    picks = np.zeros(len(scores), dtype=bool)
    picks[np.argsort(-scores, kind="stable")[:k]] = True
    return picks
