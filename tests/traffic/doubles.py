"""Doubles of the paid remote APIs for the traffic tests and the end-to-end simulation: upstream
models that answer right exactly when the real model did, and a judge that knows the gold answer.

The outcomes are real: MMLU-Pro's per-question correctness of 23 models (`mmlu_pro/`) and
RouteLLM's GSM8K outcomes of Mixtral-8x7B-Instruct and GPT-4 (`routellm/evals/gsm8k/`), found in
$CONFROUTE_MMLU_PRO_DIR / $CONFROUTE_ROUTELLM_DIR or the `shared/data` folder beside the
repository. A model double answers a known prompt with the gold answer where the real model was
right and with a wrong one where it was wrong; it is an `Answerer` for the one upstream double,
`tests/serve/upstream.py`'s `echo_app(answer=...)`, so callers talk to it over real HTTP. The
judge double reads the pairwise judge's prompt (`confroute.evaluation.judge.pair_prompts`),
grades both answers against the gold answer and gives MT-Bench's verdict: [[A]] or [[B]] for the
only right one, [[C]] when both or neither are right.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))

from upstream import Answer, Answerer, last_user_text  # noqa: E402

from confroute.labelling.judge import correctness  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LETTERS = "ABCDEFGHIJ"
GSM8K_EDGE, GSM8K_CLOUD = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
_SECTION = re.compile(r"\[User Question\]\n(?P<q>.*)\n\n\[The Start of Assistant A's Answer\]\n"
                      r"(?P<a>.*)\n\[The End of Assistant A's Answer\]\n\n\[The Start of "
                      r"Assistant B's Answer\]\n(?P<b>.*)\n\[The End of Assistant B's Answer\]",
                      re.DOTALL)


def data_dir(env: str, name: str) -> Path | None:
    """The data folder named by `env`, else `shared/data/<name>` beside the repository."""
    for candidate in (os.environ.get(env), ROOT.parent / "shared" / "data" / name):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@dataclasses.dataclass
class KnownOutcomes:
    """Prompts with their gold answers and each real model's correctness on them.

    `prompts` [n], `gold` [n] (an option letter or a number), `answer_type` ("choice" or
    "number"), `correct` {model: bool [n]}, `sources` [n] (category or benchmark), `ids` [n].
    """

    prompts: list[str]
    gold: list[str]
    answer_type: str
    correct: dict[str, np.ndarray]
    sources: list[str]
    ids: list[str]

    def __post_init__(self) -> None:
        self._index = {p: i for i, p in enumerate(self.prompts)}

    def index(self, prompt: str) -> int:
        """The row of `prompt`; KeyError naming it when the double does not know it."""
        if prompt not in self._index:
            raise KeyError(f"the double knows no prompt {prompt[:60]!r}")
        return self._index[prompt]

    def answer(self, model: str, prompt: str) -> str:
        """What the double of `model` says: right exactly when the real model was."""
        i = self.index(prompt)
        value = self.gold[i] if self.correct[model][i] else self._wrong(i)
        return f"Let me think. The answer is {value}."

    def grade(self, prompt: str, answer: str) -> float | None:
        """1.0 / 0.0 against the gold answer (None: no answer found)."""
        i = self.index(prompt)
        return correctness(answer, self.gold[i], self.answer_type,  # type: ignore[arg-type]
                           LETTERS if self.answer_type == "choice" else None)

    def _wrong(self, i: int) -> str:
        if self.answer_type == "choice":
            return LETTERS[(LETTERS.index(self.gold[i]) + 1 + i % 3) % 4]
        return str(int(float(self.gold[i])) + 1 + i % 7)

    def subset(self, index: np.ndarray) -> KnownOutcomes:
        return KnownOutcomes([self.prompts[i] for i in index], [self.gold[i] for i in index],
                             self.answer_type, {m: c[index] for m, c in self.correct.items()},
                             [self.sources[i] for i in index], [self.ids[i] for i in index])


def mmlu_pro(models: list[str], root: Path | None = None) -> KnownOutcomes:
    """MMLU-Pro questions (formatted as `confroute mmlu-pro` does) every model answered."""
    import pandas as pd

    from confroute.dataset.mmlu_pro import format_prompt

    folder = root or data_dir("CONFROUTE_MMLU_PRO_DIR", "mmlu_pro")
    if folder is None:
        raise FileNotFoundError("MMLU-Pro outcomes not found: set CONFROUTE_MMLU_PRO_DIR")
    frame = pd.read_parquet(folder / "questions.parquet").merge(
        pd.read_parquet(folder / "outcomes.parquet")[["question_id", *models]], on="question_id")
    frame = frame[~frame[models].isna().any(axis=1)].reset_index(drop=True)
    prompts = [format_prompt(q, o) for q, o in zip(frame["question"], frame["options"],
                                                   strict=True)]
    return KnownOutcomes(prompts, frame["answer"].astype(str).tolist(), "choice",
                         {m: frame[m].to_numpy(dtype=float) == 1.0 for m in models},
                         frame["category"].astype(str).tolist(),
                         [f"mmlu_pro/{q}" for q in frame["question_id"]])


def gsm8k(root: Path | None = None) -> KnownOutcomes:
    """RouteLLM's GSM8K test prompts with Mixtral-8x7B-Instruct's and GPT-4's correctness, and
    the gold numbers from GSM8K's test file (same order)."""
    import pandas as pd

    folder = root or data_dir("CONFROUTE_ROUTELLM_DIR", "routellm")
    gsm = (folder.parent / "gsm8k" / "test.jsonl") if folder else None
    if folder is None or gsm is None or not gsm.is_file():
        raise FileNotFoundError("RouteLLM / GSM8K outcomes not found: set CONFROUTE_ROUTELLM_DIR")
    frame = pd.read_csv(folder / "evals" / "gsm8k" / "gsm8k_responses.csv")
    gold = [json.loads(line)["answer"].rsplit("####", 1)[1].strip().replace(",", "")
            for line in gsm.read_text().splitlines() if line.strip()]
    return KnownOutcomes(frame["prompt"].astype(str).tolist(), gold, "number",
                         {m: frame[m].astype(bool).to_numpy() for m in (GSM8K_EDGE, GSM8K_CLOUD)},
                         ["gsm8k"] * len(frame), [f"gsm8k/{i}" for i in range(len(frame))])


def model_answerer(outcomes: KnownOutcomes, model: str) -> Answerer:
    """The upstream double of `model` for `echo_app(answer=...)`."""
    return lambda body: Answer(outcomes.answer(model, last_user_text(body.get("messages", []))))


def judge_verdict(outcomes: KnownOutcomes, user_prompt: str) -> str:
    """The verdict of a judge that knows the gold answer, for one pairwise judge prompt."""
    found = _SECTION.search(user_prompt)
    if found is None:
        return "I cannot read this comparison."
    right_a = outcomes.grade(found["q"], found["a"]) == 1.0
    right_b = outcomes.grade(found["q"], found["b"]) == 1.0
    verdict = "A" if right_a and not right_b else "B" if right_b and not right_a else "C"
    return f"Graded against the reference answer. [[{verdict}]]"


def judge_answerer(outcomes: KnownOutcomes) -> Answerer:
    """The judge double for `echo_app(answer=...)`."""
    return lambda body: Answer(judge_verdict(outcomes, last_user_text(body.get("messages", []))))


def judge_ask(outcomes: KnownOutcomes) -> Any:
    """The judge double as a `confroute.evaluation.judge.Ask` (no HTTP)."""
    return lambda prompts: [judge_verdict(outcomes, user) for _, user in prompts]
