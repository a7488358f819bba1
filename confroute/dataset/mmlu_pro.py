"""MMLU-Pro pairs and ladders: real per-question correctness of many models as a `Ratings` table.

Reads the local copy described in the shared data README (TIGER-AI-Lab/MMLU-Pro, Apache-2.0):
`questions.parquet` (`question_id, category, src, question, options, answer, answer_index`) and
`outcomes.parquet` (`question_id` and one 0/1 column per model, NA where a model's result is
missing). Any two model columns are a pair, any longer list a ladder.

- Prompt: the question followed by its lettered options (what a user sends, and what the router
  reads).
- Rating: correctness 0/1 of the model's 5-shot chain-of-thought answer.
- Tokens: input = ceil(characters / 4) of the prompt; output = the mean ceil(characters / 4) of the
  real chain-of-thought responses in `responses_sample.jsonl.gz` (one number for every model and
  question, since per-question outputs were not published), or 0 without that file.
- Questions where any chosen model's outcome is NA are dropped and counted in `info`.

`split` assigns train / val / test by a fixed seed and the question id. 6,810 MMLU-Pro questions
come from MMLU (`src` starting `ori_mmlu`); with `routellm_mmlu=True` (a router that will be
evaluated on RouteLLM's MMLU outcomes) none of them is put in train or val.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute import arguments as check
from confroute.dataset.ratings import (
    Price,
    Ratings,
    count_input,
    listed_prices,
    order_by_price,
    parse_prices,
)
from confroute.errors import ConfigError, DataError, require

ROOT_ENV = "CONFROUTE_MMLU_PRO_DIR"
MMLU_DERIVED_PREFIX = "ori_mmlu"
QUESTION_COLUMNS = ("question_id", "category", "src", "question", "options")


def resolve_root(root: str | Path | None = None) -> Path:
    """The MMLU-Pro folder: the argument, else $CONFROUTE_MMLU_PRO_DIR."""
    if root is not None:
        root = check.path(root, "root", DataError, kind="folder",
                          fix="give the folder holding questions.parquet and outcomes.parquet")
    value = root or os.environ.get(ROOT_ENV)
    if not value:
        raise DataError(f"the MMLU-Pro files are needed: pass their folder (or set {ROOT_ENV}) "
                        "holding questions.parquet and outcomes.parquet")
    path = Path(value)
    for name in ("questions.parquet", "outcomes.parquet"):
        if not (path / name).is_file():
            raise DataError(f"{path / name} is missing; the MMLU-Pro folder must hold "
                            "questions.parquet and outcomes.parquet")
    return path


def available_models(root: str | Path | None = None) -> list[str]:
    """Every model with an outcome column in `outcomes.parquet`."""
    pd = require("pandas", "train")
    columns = pd.read_parquet(resolve_root(root) / "outcomes.parquet").columns
    return [str(c) for c in columns if c != "question_id"]


def load(models: Sequence[str], prices: Mapping[str, Any] | str | Path,
         root: str | Path | None = None) -> Ratings:
    """The `models` (2 or more names from the outcome file) on every question all of them
    answered, cheapest first by `prices` (see `ratings.parse_prices`).

    Raises DataError for an unknown model (naming the available ones), a model without a price,
    fewer than 2 models, or files without the expected columns.
    """
    pd = require("pandas", "train")
    models = check.names(models, "models", at_least=2, error=DataError)
    priced = {} if isinstance(prices, Mapping) and not prices else parse_prices(prices)
    priced = {**listed_prices([m for m in models if m not in priced]), **priced}  # file wins
    folder = resolve_root(root)
    questions = pd.read_parquet(folder / "questions.parquet")
    outcomes = pd.read_parquet(folder / "outcomes.parquet")
    missing = [c for c in QUESTION_COLUMNS if c not in questions.columns]
    if missing or "question_id" not in outcomes.columns:
        raise DataError(f"{folder}: questions.parquet needs {', '.join(QUESTION_COLUMNS)} and "
                        "outcomes.parquet needs question_id; "
                        f"missing {', '.join(missing) or 'question_id in outcomes'}")
    unknown = [m for m in models if m not in outcomes.columns]
    if unknown:
        known = ", ".join(c for c in outcomes.columns if c != "question_id")
        raise DataError(f"model(s) {', '.join(unknown)} have no outcome column; available: "
                        f"{known}")
    unpriced = [m for m in models if m not in priced]
    if unpriced:
        raise DataError(f"no price for model(s) {', '.join(unpriced)}; give input_per_mtok and "
                        "output_per_mtok for every routed model")
    frame = questions.merge(outcomes[["question_id", *models]], on="question_id", how="inner")
    na = frame[models].isna().any(axis=1).to_numpy()
    frame = frame[~na].reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"no question has an outcome for all of {', '.join(models)}")
    prompts = [format_prompt(q, o) for q, o in zip(frame["question"], frame["options"],
                                                   strict=True)]
    tokens_in, how = count_input(prompts, models, priced)
    out_tokens, out_note = _output_tokens(folder, models, priced)
    info = {"source": str(folder), "questions": int(len(na)), "dropped_missing_outcome": int(
        na.sum()), "quality": "correctness (0/1), 5-shot chain of thought",
        "tokens": f"input: {how} of question + options; output: {out_note}"}
    table = Ratings(
        np.array([f"mmlu_pro/{q}" for q in frame["question_id"]]), prompts, models,
        frame[models].to_numpy(dtype=float), [priced[m] for m in models],
        tokens_in, np.full(len(frame), out_tokens),
        frame["category"].astype(str).to_numpy(), None, frame["src"].astype(str).to_numpy(),
        info)
    return order_by_price(table)


def format_prompt(question: str, options: Any) -> str:
    """The question and its lettered options, one per line (`A. ...`)."""
    letters = "ABCDEFGHIJKLMNOP"
    check.text(question, "question", error=DataError)
    options = check.names(options, "options", error=DataError)
    if len(options) > len(letters):
        raise DataError(f"a question has {len(options)} options; at most {len(letters)}")
    return str(question).strip() + "\n" + "\n".join(
        f"{letters[i]}. {str(o).strip()}" for i, o in enumerate(options))


def mmlu_derived(table: Ratings) -> np.ndarray:
    """[n] bool: the questions MMLU-Pro took from MMLU (`src` starting `ori_mmlu`)."""
    if table.src is None:
        raise DataError("this table has no src column, so MMLU-derived questions cannot be "
                        "told apart; build it with mmlu_pro.load")
    return np.char.startswith(table.src.astype(str), MMLU_DERIVED_PREFIX)


def split(table: Ratings, seed: int = 0, test_fraction: float = 0.3,
          val_fraction: float = 0.0, routellm_mmlu: bool = False) -> Ratings:
    """`table` with `splits` set by question: u = sha256("<seed>/<id>") as a number in [0, 1);
    test if u < test_fraction, val if u < test_fraction + val_fraction, else train. Keyed by the
    question id, so a question has the same split in every pair and ladder built from the file
    (whatever other questions a pair drops), and the shares are those asked up to sampling.
    With `routellm_mmlu`, every MMLU-derived question goes to test, so nothing trained here has
    seen an MMLU question."""
    check.instance(table, "table", Ratings, "a confroute.dataset.ratings.Ratings table")
    seed, test_fraction, val_fraction = _split_arguments(seed, test_fraction, val_fraction)
    splits = assign_splits(table.ids, seed, test_fraction, val_fraction).astype(object)
    info = dict(table.info, split={"seed": seed, "test_fraction": test_fraction,
                                   "val_fraction": val_fraction, "routellm_mmlu": routellm_mmlu,
                                   "method": "u = sha256('<seed>/<id>')[:15 hex] / 16**15; "
                                             "test if u < test_fraction, then val, then train"})
    if routellm_mmlu:
        derived = mmlu_derived(table)
        splits[derived] = "test"
        info["split"]["mmlu_derived_moved_to_test"] = int(derived.sum())
    if not (splits == "train").any():
        raise DataError("no training rows are left after the split")
    out = table.subset(np.arange(len(table)))
    out.splits, out.info = splits.astype(str), info
    return out


def assign_splits(ids: Sequence[str] | np.ndarray, seed: int = 0, test_fraction: float = 0.3,
                  val_fraction: float = 0.0) -> np.ndarray:
    """The split of each question id [n] (see `split`), without a table. ConfigError for a bad
    argument."""
    ids = check.names(ids, "ids")
    seed, test_fraction, val_fraction = _split_arguments(seed, test_fraction, val_fraction)
    u = np.array([int(hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()[:15], 16) / 16 ** 15
                  for i in ids])
    return np.where(u < test_fraction, "test",
                    np.where(u < test_fraction + val_fraction, "val", "train"))


def _split_arguments(seed: Any, test_fraction: Any, val_fraction: Any
                     ) -> tuple[int, float, float]:
    """The split's arguments checked: a whole seed, fractions that leave rows to train on."""
    seed = check.number(seed, "seed", low=0, high=2 ** 32 - 1, integer=True)
    test_fraction = check.number(test_fraction, "test_fraction", low=0.0, high=1.0,
                                 low_open=True)
    val_fraction = check.number(val_fraction, "val_fraction", low=0.0, high=1.0)
    if test_fraction + val_fraction >= 1:
        raise ConfigError(f"test_fraction {test_fraction} + val_fraction {val_fraction} must be "
                          "below 1 to leave rows for training")
    return seed, test_fraction, val_fraction


def _output_tokens(folder: Path, models: list[str], priced: dict[str, Price]
                   ) -> tuple[float, str]:
    path = folder / "responses_sample.jsonl.gz"
    if not path.is_file():
        return 0.0, "unknown (counted as 0; responses_sample.jsonl.gz absent)"
    pd = require("pandas", "train")
    responses = pd.read_json(path, lines=True)["response"].fillna("").astype(str)
    counts, how = count_input(responses.tolist(), models, priced)
    mean = float(counts.mean())
    return mean, (f"{mean:.0f} per answer, the mean ({how}) of the {len(responses)} real "
                  "chain-of-thought responses in responses_sample.jsonl.gz")


__all__ = ["Price", "assign_splits", "available_models", "format_prompt", "load", "mmlu_derived",
           "split"]
