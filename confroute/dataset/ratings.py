"""Labelled tables with K models: a rating per model per prompt, the models' names and prices.

A `Ratings` table is what K-model routing is trained and evaluated on: row i is a prompt, column k
a model, `ratings[i, k]` how good model k's answer to prompt i was (correctness 0/1, or a judge
score; higher is better). Models are kept in ladder order, cheapest first, by their list prices
(`Price`, USD per million input / output tokens), so "the cheapest model that is good enough" is a
scan from column 0 up.

On disk (`read_ratings`): a local .parquet/.jsonl/.json/.csv table with `prompt` and one column per
model holding its ratings (named exactly as the model), optional `id`, `category`, `split`,
`tokens_in`, `tokens_out`; and the prices as a mapping (or a YAML/JSON file)
`{model: {input_per_mtok: ..., output_per_mtok: ...}}`. The models read are those priced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset.tables import read_table
from confroute.errors import DataError
from confroute.files import read_settings_file

RESERVED = ("id", "prompt", "category", "split", "tokens_in", "tokens_out", "src")


@dataclasses.dataclass(frozen=True)
class Price:
    """List price of a model in USD per million tokens (input, output)."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: np.ndarray, tokens_out: np.ndarray) -> np.ndarray:
        """USD per prompt, [n], for `tokens_in` / `tokens_out` [n]."""
        return (np.asarray(tokens_in) * self.input_per_mtok
                + np.asarray(tokens_out) * self.output_per_mtok) / 1e6


@dataclasses.dataclass
class Ratings:
    """K models' ratings of n prompts, models ordered cheapest first (see module docstring).

    Fields: `ids` [n] str, `prompts` [n] str, `models` [K] names, `ratings` [n, K] float (finite),
    `prices` [K] `Price`, `tokens_in` [n] and `tokens_out` [n] (estimated or given token counts),
    `categories` [n] str or None, `splits` [n] str or None, `src` [n] str or None, `info`
    provenance.
    Raises DataError on fewer than 2 models, a repeated model, NaN ratings, misaligned columns.
    """

    ids: np.ndarray
    prompts: list[str]
    models: list[str]
    ratings: np.ndarray
    prices: list[Price]
    tokens_in: np.ndarray
    tokens_out: np.ndarray
    categories: np.ndarray | None = None
    splits: np.ndarray | None = None
    src: np.ndarray | None = None
    """Where each prompt was taken from (MMLU-Pro's `src`, e.g. `ori_mmlu-...`), when known."""
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=object).astype(str)
        self.ratings = np.asarray(self.ratings, dtype=float)
        n, k = len(self.ids), len(self.models)
        if k < 2:
            raise DataError(f"a ladder needs at least 2 models to route between; found {k} "
                            f"({', '.join(self.models) or 'none'}). Add a cheaper or a stronger "
                            "model")
        if len(set(self.models)) != k:
            raise DataError(f"model names repeat in {self.models}; each model once")
        if self.ratings.shape != (n, k):
            raise DataError(f"ratings must be one row per prompt and one column per model, "
                            f"({n}, {k}); found {self.ratings.shape}")
        if len(self.prices) != k:
            raise DataError(f"{len(self.prices)} prices for {k} models; one price per model")
        for name, values in (("prompts", self.prompts), ("tokens_in", self.tokens_in),
                             ("tokens_out", self.tokens_out), ("categories", self.categories),
                             ("splits", self.splits), ("src", self.src)):
            if values is not None and len(values) != n:
                raise DataError(f"{name} has {len(values)} rows, ratings have {n}")
        for name, tokens in (("tokens_in", self.tokens_in), ("tokens_out", self.tokens_out)):
            values = np.asarray(tokens, dtype=float)
            wrong = ~(np.isfinite(values) & (values >= 0))
            if wrong.any():
                row = int(np.flatnonzero(wrong)[0])
                raise DataError(f"{name} must be token counts >= 0; prompt {self.ids[row]} has "
                                f"{float(values[row])} ({int(wrong.sum())} such prompt(s))")
        bad = ~np.isfinite(self.ratings)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"ratings of model '{self.models[col]}' are missing (NaN) at "
                            f"{int(bad[:, col].sum())} prompt(s), first {self.ids[row]}; drop "
                            "those prompts (mmlu_pro.load drops them and counts them) or fill "
                            "them with a rating")

    def __len__(self) -> int:
        return len(self.ids)

    def costs(self) -> np.ndarray:
        """USD of answering each prompt with each model, [n, K]."""
        return np.stack([p.cost(self.tokens_in, self.tokens_out) for p in self.prices], axis=1)

    def subset(self, index: np.ndarray) -> Ratings:
        """The rows at `index` (positions), all columns kept aligned."""
        index = np.asarray(index, dtype=int)

        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values)[index]

        return dataclasses.replace(
            self, ids=self.ids[index], prompts=[self.prompts[i] for i in index],
            ratings=self.ratings[index], tokens_in=np.asarray(self.tokens_in)[index],
            tokens_out=np.asarray(self.tokens_out)[index], categories=rows(self.categories),
            splits=rows(self.splits), src=rows(self.src), info=dict(self.info))

    def ladder(self, models: Sequence[str]) -> Ratings:
        """The same prompts with only `models` (at least 2, all present), cheapest first."""
        models = list(models)
        missing = [m for m in models if m not in self.models]
        if missing:
            raise DataError(f"model(s) {', '.join(missing)} not in this table; it has "
                            f"{', '.join(self.models)}")
        cols = [self.models.index(m) for m in models]
        out = dataclasses.replace(self, models=models, ratings=self.ratings[:, cols],
                                  prices=[self.prices[c] for c in cols], info=dict(self.info))
        return order_by_price(out)


def order_by_price(table: Ratings) -> Ratings:
    """`table` with its models sorted cheapest first by mean USD per prompt on its rows."""
    order = np.argsort(table.costs().mean(axis=0), kind="stable")
    if (order == np.arange(len(order))).all():
        return table
    return dataclasses.replace(table, models=[table.models[k] for k in order],
                               ratings=table.ratings[:, order],
                               prices=[table.prices[k] for k in order])


def parse_prices(prices: Mapping[str, Any] | str | Path) -> dict[str, Price]:
    """{model: Price} from a mapping or a YAML/JSON file of
    `{model: {input_per_mtok: x, output_per_mtok: y}}` (or `{model: x}` for one price for both).
    Raises DataError on a missing file, a missing, non-numeric or negative price."""
    if isinstance(prices, str | Path):
        path = Path(prices)
        if not path.is_file():
            raise DataError(f"price file {path} does not exist; give a YAML or JSON mapping of "
                            "model -> {input_per_mtok, output_per_mtok}")
        prices = read_settings_file(path, "price file", DataError)
    if not isinstance(prices, Mapping) or not prices:
        raise DataError("prices must be a non-empty mapping of model -> {input_per_mtok, "
                        f"output_per_mtok}}; found {type(prices).__name__}")
    out = {}
    for model, value in prices.items():
        if not isinstance(value, Mapping):
            value = {"input_per_mtok": value, "output_per_mtok": value}
        pair = []
        for key in ("input_per_mtok", "output_per_mtok"):
            number = value.get(key)
            if isinstance(number, bool) or not isinstance(number, int | float) \
                    or not np.isfinite(number) or number < 0:
                raise DataError(f"price {key} of model '{model}' must be a number >= 0 (USD per "
                                f"million tokens); found {number!r}")
            pair.append(float(number))
        out[str(model)] = Price(*pair)
    return out


def read_ratings(source: str | Path, prices: Mapping[str, Any] | str | Path,
                 models: Sequence[str] | None = None) -> Ratings:
    """A K-model table from a local file (see the module docstring), models cheapest first.

    `models` defaults to every priced model. Raises DataError naming a model column that is
    missing, a model without a price, NaN ratings, fewer than 2 models, or an unreadable file.
    """
    path = Path(source)
    if not path.is_file():
        raise DataError(f"ratings file {path} does not exist")
    frame = read_table(str(path))
    priced = parse_prices(prices)
    models = list(priced) if models is None else list(models)
    unpriced = [m for m in models if m not in priced]
    if unpriced:
        raise DataError(f"no price for model(s) {', '.join(unpriced)}; give input_per_mtok and "
                        "output_per_mtok for every routed model")
    missing = [m for m in ["prompt", *models] if m not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (one column of ratings "
                        f"per model, named as the model); found {found}")
    try:
        values = frame[models].apply(lambda c: c.astype(float)).to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: model ratings must be numbers: {exc}") from exc
    prompts = [_prompt(path, i, p) for i, p in enumerate(frame["prompt"])]
    tokens_in = (frame["tokens_in"].to_numpy(dtype=float) if "tokens_in" in frame.columns
                 else estimate_tokens(prompts))
    tokens_out = (frame["tokens_out"].to_numpy(dtype=float) if "tokens_out" in frame.columns
                  else np.zeros(len(frame)))
    table = Ratings(
        frame["id"].astype(str).to_numpy() if "id" in frame.columns
        else np.array([f"row-{i}" for i in range(len(frame))]), prompts, models, values,
        [priced[m] for m in models], tokens_in, tokens_out,
        frame["category"].astype(str).to_numpy() if "category" in frame.columns else None,
        frame["split"].astype(str).to_numpy() if "split" in frame.columns else None,
        frame["src"].astype(str).to_numpy() if "src" in frame.columns else None,
        {"source": str(path), "tokens": "given" if "tokens_in" in frame.columns else
         "estimated: ceil(chars / 4) of the prompt; output tokens "
         + ("given" if "tokens_out" in frame.columns else "unknown (counted as 0)")})
    return order_by_price(table)


def estimate_tokens(texts: Sequence[str]) -> np.ndarray:
    """ceil(characters / 4) per text: OpenAI's rule of thumb when no tokenizer is at hand."""
    return np.array([-(-len(t) // 4) for t in texts], dtype=float)


def _prompt(path: Path, row: int, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{path}: row {row} has no prompt text ({value!r})")
    return value
