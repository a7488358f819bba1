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
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError, require
from confroute.evaluation import metrics
from confroute.evaluation.groundtruth import GroundTruth

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
class JudgeConfig:
    base_url: str
    """OpenAI-compatible API root, e.g. https://api.openai.com/v1."""
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (not needed by keyless local servers)."""
    timeout_s: float = 120.0
    max_tokens: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"judge base_url must be an http(s) URL; found {self.base_url!r}")
        if not self.model:
            raise ConfigError("judge model name is empty")


Ask = Callable[[str, str], str]
"""(system prompt, user prompt) -> the judge's reply text."""


def compare(truth: GroundTruth, scores: Mapping[str, np.ndarray], level: float,
            ask: Ask, seed: int = 0) -> dict[str, Any]:
    """% of prompts on which each router's answer is judged best, each router at CPT(level)."""
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
    best_edge = np.ones(len(truth), dtype=bool)
    best_cloud = np.ones(len(truth), dtype=bool)
    verdicts = {"edge": 0, "cloud": 0, "tie": 0}
    for i in disputed:
        winner = judge_pair(truth.prompts[i], truth.answers_edge[i], truth.answers_cloud[i],
                            ask, cloud_first=bool(rng.random() < 0.5))
        verdicts[winner] += 1
        best_edge[i], best_cloud[i] = winner in ("edge", "tie"), winner in ("cloud", "tie")
    routers = {name: {**points[name], "best_pct": float(100 * np.mean(np.where(
        picks[name], best_cloud, best_edge)))} for name in scores}
    return {"level": level, "prompts": len(truth), "judged": int(len(disputed)),
            "verdicts": verdicts, "routers": routers}


def judge_pair(question: str, edge_answer: str, cloud_answer: str, ask: Ask,
               cloud_first: bool) -> str:
    """'edge', 'cloud' or 'tie' from one judge call (answers shown in the given order)."""
    a, b = (cloud_answer, edge_answer) if cloud_first else (edge_answer, cloud_answer)
    reply = ask(SYSTEM, TEMPLATE.format(question=question, answer_a=a, answer_b=b))
    found = VERDICT.findall(reply or "")
    if not found:
        raise DataError(f"the judge's reply has no verdict [[A]], [[B]] or [[C]]: {reply[:200]!r}")
    verdict = found[-1]
    if verdict == "C":
        return "tie"
    return "cloud" if (verdict == "A") == cloud_first else "edge"


def http_judge(cfg: JudgeConfig) -> Ask:
    """An `Ask` that posts to `{base_url}/chat/completions` (temperature 0)."""
    httpx = require("httpx", "train")
    key = os.environ.get(cfg.api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    client = httpx.Client(base_url=cfg.base_url.rstrip("/"), headers=headers,
                          timeout=cfg.timeout_s)

    def ask(system: str, user: str) -> str:
        body = {"model": cfg.model, "temperature": 0, "max_tokens": cfg.max_tokens,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}]}
        try:
            response = client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise DataError(f"judge endpoint {cfg.base_url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise DataError(f"judge endpoint {cfg.base_url} answered HTTP "
                            f"{response.status_code}: {response.text[:300]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DataError(f"judge endpoint {cfg.base_url} returned no chat completion: "
                            f"{response.text[:300]}") from exc

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
