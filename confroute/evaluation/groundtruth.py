"""Per-prompt edge and cloud outcomes to evaluate routers against.

Two sources:

- The RouteLLM evaluation files (edge = Mixtral-8x7B-Instruct, cloud = gpt-4-1106-preview), in a
  folder laid out as RouteLLM's `routellm/` (`evals/{mt_bench,gsm8k,mmlu}/...`):
  - `mt-bench`: route on the first turn; a prompt's quality under a model is the mean of that
    model's two GPT-4 judge scores (turns 1 and 2, 1-10). Ids `mt_bench/<question_id>`.
  - `gsm8k`: quality = correctness (0/1). Ids `gsm8k/<row>` (row in the published test order).
  - `mmlu`: quality = correctness (0/1). Ids `mmlu/<subject>/<row>` (row in the subject file).
  RouteLLM drops the prompts listed in each `contaminated_prompts.jsonl` by exact prompt text
  (`isin(eval_prompt)`; for MT-Bench a question goes if either turn matches); so do we. The
  `eval_idx` there is informative only: for MMLU it indexes the concatenation of the subject
  files in RouteLLM's `ALL_MMLU_DOMAINS` order (not alphabetical), for MT-Bench the 80 first turns
  followed by the 80 second turns. Each listed prompt matches exactly one row here. The ids are
  those of the bundled `routellm-judge` dataset, so its split of a prompt can be looked up.
- A labelled dataset of confroute's own (a bundled name or a file, `NAME:SPLIT` for the rows of
  one split) with `prompt`, `rating_edge`, `rating_cloud` (and optional `id`, `split`, token
  counts `tokens_in`, `tokens_out_edge`, `tokens_out_cloud`). Nothing is dropped from these.

Token counts are those given; otherwise they are estimated as ceil(characters / 4) of the prompt
and of each model's answer where the answer is known (OpenAI's rule of thumb; no model tokenizer is
available offline), and the report says which.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset import labels as rules
from confroute.dataset import tables
from confroute.errors import DataError, require

EDGE_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD_MODEL = "gpt-4-1106-preview"
BENCHMARKS = ("mt-bench", "gsm8k", "mmlu")
ROUTELLM_DIR_ENV = "CONFROUTE_ROUTELLM_DIR"
_TOKEN_COLUMNS = ("tokens_in", "tokens_out_edge", "tokens_out_cloud")


@dataclasses.dataclass
class GroundTruth:
    """One row per prompt: what the edge and the cloud model would have scored on it."""

    name: str
    ids: np.ndarray
    prompts: list[str]
    quality_edge: np.ndarray
    quality_cloud: np.ndarray
    edge_model: str = EDGE_MODEL
    cloud_model: str = CLOUD_MODEL
    tokens_in: np.ndarray | None = None
    tokens_out_edge: np.ndarray | None = None
    tokens_out_cloud: np.ndarray | None = None
    answers_edge: list[str] | None = None
    answers_cloud: list[str] | None = None
    groups: np.ndarray | None = None
    """Where each prompt comes from (a labelled dataset's `source`); reported per group too."""
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=object).astype(str)
        n = len(self.ids)
        if n == 0:
            raise DataError(f"ground truth '{self.name}' has no prompts")
        for field in ("prompts", "quality_edge", "quality_cloud"):
            if len(getattr(self, field)) != n:
                raise DataError(f"ground truth '{self.name}': {field} has "
                                f"{len(getattr(self, field))} rows, ids have {n}")
        self.quality_edge = _finite(self.name, "edge quality", self.quality_edge)
        self.quality_cloud = _finite(self.name, "cloud quality", self.quality_cloud)
        unique, counts = np.unique(self.ids, return_counts=True)
        if (counts > 1).any():
            raise DataError(f"ground truth '{self.name}' repeats id(s) "
                            f"{', '.join(unique[counts > 1][:5])}; ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self, margin: float = 0.0) -> np.ndarray:
        """Training labels from the same outcomes: 1 when the cloud is rated higher (judge rule)."""
        return rules.judge_rule(self.quality_edge, self.quality_cloud, margin, "edge").values

    def sample(self, n: int, seed: int = 0) -> GroundTruth:
        """A seeded random sample of `n` prompts, stratified by group (proportional, largest
        remainder), for a quicker evaluation; all prompts when `n` is at least their number."""
        if n < 1:
            raise DataError(f"sample size must be >= 1; found {n}")
        if n >= len(self):
            return self
        sampled = self.subset(stratified_sample(self.groups, len(self), n, seed))
        sampled.info = {**sampled.info, "sample_seed": seed}
        return sampled

    def subset(self, index: np.ndarray) -> GroundTruth:
        """The rows at `index` (positions), all columns kept aligned."""
        index = np.asarray(index, dtype=int)

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[index]

        def items(values: list[str] | None) -> list[str] | None:
            return None if values is None else [values[i] for i in index]

        return dataclasses.replace(
            self, ids=self.ids[index], prompts=[self.prompts[i] for i in index],
            quality_edge=self.quality_edge[index], quality_cloud=self.quality_cloud[index],
            tokens_in=rows(self.tokens_in), tokens_out_edge=rows(self.tokens_out_edge),
            tokens_out_cloud=rows(self.tokens_out_cloud), answers_edge=items(self.answers_edge),
            answers_cloud=items(self.answers_cloud), groups=rows(self.groups),
            info={**self.info, "subset_of": len(self)})


def stratified_sample(groups: np.ndarray | None, total: int, n: int, seed: int = 0
                      ) -> np.ndarray:
    """Sorted positions of a seeded sample of `n` of `total` rows, each group (None: one pool)
    represented in proportion (largest remainder)."""
    groups = np.asarray(groups) if groups is not None else np.zeros(total, dtype=int)
    _, inverse, counts = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    share = counts * n / total
    quota = np.floor(share).astype(int)
    quota[np.argsort(quota - share, kind="stable")[: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(np.flatnonzero(inverse == g), q, replace=False)
                            for g, q in enumerate(quota)])
    return np.sort(index)


def load_truth(spec: str, routellm_dir: str | Path | None = None) -> GroundTruth:
    """`mt-bench`, `gsm8k` or `mmlu` (RouteLLM files), else a labelled dataset name or file."""
    if spec in BENCHMARKS:
        return load_benchmark(spec, routellm_dir)
    return load_labelled(spec)


def load_benchmark(name: str, routellm_dir: str | Path | None = None) -> GroundTruth:
    """Load one RouteLLM benchmark, decontaminated as RouteLLM does."""
    loaders = {"mt-bench": _mt_bench, "gsm8k": _gsm8k, "mmlu": _mmlu}
    if name not in loaders:
        raise DataError(f"unknown benchmark '{name}'; choose one of {', '.join(BENCHMARKS)}")
    return loaders[name](resolve_routellm_dir(routellm_dir) / "evals")


def resolve_routellm_dir(path: str | Path | None) -> Path:
    """The RouteLLM `routellm/` folder: the argument, else $CONFROUTE_ROUTELLM_DIR."""
    value = path or os.environ.get(ROUTELLM_DIR_ENV)
    if not value:
        raise DataError("the RouteLLM evaluation files are needed for this benchmark: pass "
                        f"--routellm-dir (or set {ROUTELLM_DIR_ENV}) to a folder holding "
                        "evals/{mt_bench,gsm8k,mmlu}/ as in lm-sys/RouteLLM's routellm/ folder")
    root = Path(value)
    if not (root / "evals").is_dir():
        raise DataError(f"{root} has no evals/ folder; point it at RouteLLM's routellm/ folder "
                        "(the one holding evals/mt_bench, evals/gsm8k, evals/mmlu)")
    return root


def load_labelled(source: str) -> GroundTruth:
    """A dataset with `prompt`, `rating_edge`, `rating_cloud` (bundled name or file[:split])."""
    from confroute.dataset.schema import SPLITS, numeric_column
    from confroute.dataset.tables import read_table

    name, _, split = source.rpartition(":")
    if name and split in SPLITS:
        frame = read_table(name)
        if "split" not in frame.columns:
            raise DataError(f"{name} has no 'split' column, so ':{split}' cannot select rows; "
                            "drop the suffix to evaluate on every row")
        frame = frame[frame["split"].astype(str) == split].reset_index(drop=True)
        if len(frame) == 0:
            raise DataError(f"{name} has no rows in split '{split}'")
    else:
        frame = read_table(source)
    missing = [c for c in ("prompt", "rating_edge", "rating_cloud") if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: evaluation needs per-prompt ratings of both models; missing "
                        f"column(s) {', '.join(missing)} "
                        f"(found {', '.join(map(str, frame.columns))})")
    ids = frame["id"].astype(str).to_numpy() if "id" in frame.columns else (
        np.array([f"row-{i}" for i in range(len(frame))]))
    prompts = [_text(source, i, p) for i, p in enumerate(frame["prompt"])]
    tokens: dict[str, Any] = {c: numeric_column(frame, c, source) for c in _TOKEN_COLUMNS
                              if c in frame.columns}
    info = {"source": source, "quality": "rating_edge / rating_cloud as given",
            "tokens": "given" if len(tokens) == 3 else "estimated: ceil(chars / 4) of the prompt"}
    if len(tokens) < 3:
        tokens = {"tokens_in": _estimate_tokens(prompts)}
    groups = frame["source"].astype(str).to_numpy() if "source" in frame.columns else None
    return GroundTruth(source, ids, prompts, numeric_column(frame, "rating_edge", source),
                       numeric_column(frame, "rating_cloud", source), groups=groups, info=info,
                       **tokens)


# --- RouteLLM benchmarks ----------------------------------------------------------------------


def _mt_bench(evals: Path) -> GroundTruth:
    pd = require("pandas", "train")
    questions = _read(pd, evals / "mt_bench" / "question.jsonl")
    judgements = _read(pd, evals / "mt_bench" / "judgements.jsonl")
    contaminated = _contaminated(pd, evals / "mt_bench")
    turns = questions["turns"].tolist()
    dirty = np.array([t[0] in contaminated or t[1] in contaminated for t in turns])
    questions = questions[~dirty].reset_index(drop=True)
    scores = {}
    for model in (EDGE_MODEL, CLOUD_MODEL):
        rows = judgements[judgements["model"] == model]
        table = rows.pivot_table(index="question_id", columns="turn", values="score",
                                 aggfunc="count")
        bad = table[(table.get(1, 0) != 1) | (table.get(2, 0) != 1)]
        missing = set(questions["question_id"]) - set(table.index)
        if len(bad) or missing:
            raise DataError(f"{evals / 'mt_bench'}: model {model} needs exactly one judgement per "
                            f"question and turn; questions "
                            f"{sorted(set(bad.index) | missing)[:5]} do not have that")
        scores[model] = rows.groupby("question_id")["score"].mean()
    qid = questions["question_id"]
    answers = {m: _mt_bench_answers(judgements, m) for m in (EDGE_MODEL, CLOUD_MODEL)}
    prompts = [t[0] for t in questions["turns"]]
    context = [t[0] + t[1] for t in questions["turns"]]
    info = {"benchmark": "mt-bench", "rows_read": len(turns),
            "dropped_contaminated": int(dirty.sum()),
            "quality": "mean of the chosen model's GPT-4 judge scores on turns 1 and 2 (1-10)",
            "routed_on": "turn 1",
            "tokens": "estimated: ceil(chars / 4); input = both user turns, output = both answers "
                      "(parsed from the turn-2 judge prompt)"}
    return GroundTruth(
        "mt-bench", np.array([f"mt_bench/{q}" for q in qid]), prompts,
        scores[EDGE_MODEL].loc[qid].to_numpy(), scores[CLOUD_MODEL].loc[qid].to_numpy(),
        tokens_in=_estimate_tokens(context),
        tokens_out_edge=_estimate_tokens([answers[EDGE_MODEL].get(q, "") for q in qid]),
        tokens_out_cloud=_estimate_tokens([answers[CLOUD_MODEL].get(q, "") for q in qid]),
        answers_edge=[answers[EDGE_MODEL].get(q, "") for q in qid],
        answers_cloud=[answers[CLOUD_MODEL].get(q, "") for q in qid], info=info)


def _mt_bench_answers(judgements: Any, model: str) -> dict[int, str]:
    """Both turns' answers of `model`, taken from its turn-2 (multi-turn) judge prompt."""
    out = {}
    start, end = "<|The Start of Assistant A's Conversation with User|>", \
        "<|The End of Assistant A's Conversation with User|>"
    rows = judgements[(judgements["model"] == model) & (judgements["turn"] == 2)]
    for qid, text in zip(rows["question_id"], rows["user_prompt"], strict=True):
        if start not in text or end not in text:
            continue
        conversation = text.split(start, 1)[1].split(end, 1)[0]
        parts = conversation.split("### Assistant A:\n")[1:]
        answers = [p.split("\n\n### User:\n", 1)[0].strip() for p in parts]
        out[int(qid)] = "\n\n".join(answers)
    return out


def _gsm8k(evals: Path) -> GroundTruth:
    pd = require("pandas", "train")
    frame = _read(pd, evals / "gsm8k" / "gsm8k_responses.csv")
    _need(frame, ("prompt", EDGE_MODEL, CLOUD_MODEL), evals / "gsm8k")
    ids = np.array([f"gsm8k/{i}" for i in range(len(frame))])
    dirty = frame["prompt"].isin(_contaminated(pd, evals / "gsm8k")).to_numpy()
    frame, ids = frame[~dirty].reset_index(drop=True), ids[~dirty]
    prompts = frame["prompt"].astype(str).tolist()
    answer = lambda m: (frame[f"{m}_response"].fillna("").astype(str).tolist()  # noqa: E731
                        if f"{m}_response" in frame.columns else None)
    edge_answers, cloud_answers = answer(EDGE_MODEL), answer(CLOUD_MODEL)
    info = {"benchmark": "gsm8k", "rows_read": int(len(dirty)),
            "dropped_contaminated": int(dirty.sum()), "quality": "correctness (0/1)",
            "tokens": "estimated: ceil(chars / 4) of the prompt and of each model's response"}
    return GroundTruth(
        "gsm8k", ids, prompts, _correct(frame, EDGE_MODEL), _correct(frame, CLOUD_MODEL),
        tokens_in=_estimate_tokens(prompts),
        tokens_out_edge=None if edge_answers is None else _estimate_tokens(edge_answers),
        tokens_out_cloud=None if cloud_answers is None else _estimate_tokens(cloud_answers),
        answers_edge=edge_answers, answers_cloud=cloud_answers, info=info)


def _mmlu(evals: Path) -> GroundTruth:
    pd = require("pandas", "train")
    files = sorted((evals / "mmlu" / "responses").glob("mmlu_*.csv"))
    if not files:
        raise DataError(f"{evals / 'mmlu' / 'responses'} has no mmlu_<subject>.csv files")
    frames = []
    for path in files:
        frame = _read(pd, path)
        _need(frame, ("prompt", EDGE_MODEL, CLOUD_MODEL), path)
        subject = path.stem.removeprefix("mmlu_")
        frame["id"] = [f"mmlu/{subject}/{i}" for i in range(len(frame))]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    dirty = frame["prompt"].isin(_contaminated(pd, evals / "mmlu")).to_numpy()
    frame = frame[~dirty].reset_index(drop=True)
    prompts = frame["prompt"].astype(str).tolist()
    info = {"benchmark": "mmlu", "rows_read": int(len(dirty)), "subjects": len(files),
            "dropped_contaminated": int(dirty.sum()), "quality": "correctness (0/1)",
            "tokens": "estimated: ceil(chars / 4) of the prompt; output tokens unknown (no "
                      "responses published), so cost counts input tokens only"}
    return GroundTruth("mmlu", frame["id"].to_numpy(), prompts, _correct(frame, EDGE_MODEL),
                       _correct(frame, CLOUD_MODEL), tokens_in=_estimate_tokens(prompts),
                       info=info)


# --- helpers ----------------------------------------------------------------------------------


def _read(pd: Any, path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path} is missing; the RouteLLM folder must hold the evals files as "
                        "published in lm-sys/RouteLLM")
    return tables.read(path, (".jsonl", ".csv"), what="RouteLLM evaluation file",
                       empty_ok=True)


def _contaminated(pd: Any, folder: Path) -> set[str]:
    path = folder / "contaminated_prompts.jsonl"
    if not path.is_file():
        raise DataError(f"{path} is missing; RouteLLM's decontamination list is needed so that "
                        "the numbers are comparable with RouteLLM's")
    return {json.loads(line)["eval_prompt"] for line in path.read_text().splitlines() if line}


def _need(frame: Any, columns: tuple[str, ...], where: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; found "
                        f"{', '.join(map(str, frame.columns))}")


def _correct(frame: Any, model: str) -> np.ndarray:
    values = frame[model]
    if values.dtype != bool:
        mapped = values.astype(str).str.lower().map({"true": 1.0, "false": 0.0, "1": 1.0,
                                                     "0": 0.0, "1.0": 1.0, "0.0": 0.0})
        if mapped.isna().any():
            raise DataError(f"column {model} must be correctness True/False; found "
                            f"{values[mapped.isna()].iloc[0]!r}")
        return mapped.to_numpy(dtype=float)
    return values.to_numpy(dtype=float)


def _estimate_tokens(texts: list[str]) -> np.ndarray:
    return np.array([-(-len(t) // 4) for t in texts], dtype=float)


def _finite(name: str, what: str, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:  # a string such as "yes" among the numbers
        raise DataError(f"ground truth '{name}': {what} must be numbers ({exc}); convert the "
                        "values before building the GroundTruth") from exc
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DataError(f"ground truth '{name}': {what} is missing or not finite at {bad.size} "
                        f"row(s), first at row {int(bad[0])}; every prompt needs both ratings")
    return array


def _text(source: str, row: int, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{source}: row {row} has no prompt text ({value!r})")
    return value
