"""Canonical labelled-prompt table and adapters from the formats confroute reads.

Canonical columns: `id`, `prompt`, `label` (float in [0, 1] = P(cloud needed)), `source`
(benchmark or group), `split` (`train`, `val` or `test`). Evidence columns (`se_edge`,
`se_cloud`, `rating_edge`, `rating_cloud`, samples, ...) are kept beside the label so another
rule can be applied without resampling.

Formats:
- battle: the paper's release / RouteLLM arena format, `model_a, model_b, prompt,
  winner_model_a, winner_model_b, winner_tie` (one-hot winner).
- scores: per-prompt `se_edge` / `se_cloud` and/or `rating_edge` / `rating_cloud`, labelled
  by a rule from `confroute.dataset.labels`.
- labelled: a ready `label` column in [0, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from confroute.config import DataConfig, LabelConfig
from confroute.dataset import labels as rules
from confroute.dataset import sources, tables
from confroute.dataset.ratings import read_ratings
from confroute.errors import DataError, require
from confroute.text import prompt_text

BATTLE_COLUMNS = ("model_a", "model_b", "prompt", "winner_model_a", "winner_model_b", "winner_tie")
SPLITS = ("train", "val", "test")


TARGET = "target:"
"""K-model tables: column `target:<model>` holds P(model's answer adequate) in [0, 1]."""


def target_column(model: str) -> str:
    return TARGET + model


@dataclasses.dataclass
class LabelledPrompts:
    """A canonical table plus a report of what loading did (drops, label counts, rule).

    For K-model routing (`models` non-empty, cheapest first) the frame also holds one
    `target:<model>` column per model, and `label` is 1 - the cheapest model's target (the
    two-model label "a model above the cheapest is needed"); `prices` holds their list prices.
    `auxiliary` models (not routed) have `target:<model>` columns too, NaN where unknown.
    """

    frame: Any  # pandas.DataFrame
    report: dict[str, Any]
    models: list[str] = dataclasses.field(default_factory=list)
    prices: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    auxiliary: list[str] = dataclasses.field(default_factory=list)

    def split(self, name: str) -> Any:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    @property
    def label_columns(self) -> list[str]:
        """The training targets: `label`, or one `target:<model>` column per model."""
        return [target_column(m) for m in self.models] if self.models else ["label"]

    @property
    def target_columns(self) -> list[str]:
        """Every training target: `label_columns`, then one per auxiliary model."""
        return [*self.label_columns, *(target_column(m) for m in self.auxiliary)]

    def fingerprint(self, split: str = "train") -> str:
        """sha256 of the (id, prompt, targets) rows of a split: names the exact training data."""
        digest = hashlib.sha256()
        columns = ["id", "prompt", *self.target_columns]
        for row in self.split(split)[columns].itertuples(index=False):
            digest.update(json.dumps([str(row[0]), row[1],
                                      *(round(float(v), 6) for v in row[2:])]).encode())
        return digest.hexdigest()


def load(cfg: DataConfig) -> LabelledPrompts:
    """Read `cfg.source`, label it, assign splits, and report every dropped row."""
    read = sources.reader(cfg.source)
    if read is not None:  # e.g. a database URL: the decision log (confroute.traffic.dataset)
        return read(cfg, load)
    if "://" in cfg.source and not Path(cfg.source).exists():
        raise DataError(f"data.source {cfg.source} is a URL that no reader claims; a database URL "
                        "(the decision log) is read by `confroute train` or, in Python, after "
                        "`import confroute.traffic.dataset`")
    if cfg.models:
        return load_ratings(cfg)
    frame = tables.read_table(cfg.source, cfg.hf_split)
    fmt = detect_format(frame) if cfg.format == "auto" else cfg.format
    report: dict[str, Any] = {"source": cfg.source, "format": fmt, "rows_read": len(frame),
                              "dropped": {}}
    if fmt == "battle":
        frame, labels = from_battle(frame, cfg.edge_model, cfg.label.ties)
    elif fmt == "scores":
        frame, labels = from_scores(frame, cfg.label)
    else:
        frame, labels = from_labelled(frame)
    frame["prompt"] = [_prompt(p, cfg.turn, i) for i, p in enumerate(frame["prompt"])]
    frame["label"] = labels.values
    report.update(label_rule=labels.rule, label_params=labels.params, label_counts=labels.counts)
    dropped = frame["label"].isna()
    if dropped.any():
        report["dropped"]["label_rule"] = int(dropped.sum())
        frame = frame[~dropped].reset_index(drop=True)
    frame = _assign_splits(frame, cfg, report)
    report["rows"] = {s: int((frame["split"] == s).sum()) for s in SPLITS}
    report["positive_rate"] = {s: round(float(frame.loc[frame["split"] == s, "label"].mean()), 4)
                               for s in SPLITS if (frame["split"] == s).any()}
    if report["rows"]["train"] < 2 or report["rows"]["val"] < 1:
        raise DataError(f"{cfg.source}: after labelling there are {report['rows']['train']} "
                        f"training and {report['rows']['val']} validation rows; need at least "
                        "2 and 1. Check the label rule (ties='drop' can remove most rows)")
    if cfg.mix:
        from confroute.dataset.mix import add_mixed

        return add_mixed(LabelledPrompts(frame, report), cfg, load)
    return LabelledPrompts(frame, report)


def load_ratings(cfg: DataConfig) -> LabelledPrompts:
    """A K-model table (`cfg.models` rating columns, `cfg.prices`) as training targets.

    Targets are the ratings themselves when `cfg.adequate_rating` is None (they must then lie
    in [0, 1]), else 1.0 where rating >= adequate_rating and 0.0 below; an auxiliary model's
    unknown rating stays NaN. `category` becomes the `source` column (what the per-source prior
    groups by). Raises DataError naming a missing model column or price, NaN ratings of a routed
    model, ratings outside [0, 1], or a file that cannot be read.
    """
    from confroute.dataset.builtin import builtin_path

    path = builtin_path(cfg.source) or Path(cfg.source)
    table = read_ratings(path, cfg.prices or {}, cfg.models, cfg.auxiliary_models)
    extra_ratings = np.zeros((len(table), 0)) if table.auxiliary_ratings is None \
        else table.auxiliary_ratings
    targets, extra = (_targets(path, names, values, cfg.adequate_rating) for names, values in
                      ((table.models, table.ratings), (table.auxiliary, extra_ratings)))
    pd = require("pandas", "train")
    frame = pd.DataFrame({"id": table.ids, "prompt": [_prompt(p, cfg.turn, i) for i, p in
                                                      enumerate(table.prompts)]})
    frame["source"] = table.categories if table.categories is not None else "data"
    if table.splits is not None:
        frame["split"] = table.splits
    for k, model in enumerate(table.models):
        frame[target_column(model)] = targets[:, k]
    for k, model in enumerate(table.auxiliary):
        frame[target_column(model)] = extra[:, k]
    frame["label"] = 1.0 - targets[:, 0]
    report: dict[str, Any] = {
        "source": cfg.source, "format": "ratings", "rows_read": len(frame), "dropped": {},
        "models": table.models, "label_rule": "adequacy",
        "label_params": {"adequate_rating": cfg.adequate_rating},
        "label_counts": {m: round(float(targets[:, k].mean()), 4)
                         for k, m in enumerate(table.models)},
        "tokens": table.info.get("tokens")}
    frame = _assign_splits(frame, cfg, report)
    train = frame[frame["split"] == "train"]
    for model in [*table.models, *table.auxiliary]:
        values = train[target_column(model)].to_numpy()
        values = values[np.isfinite(values)]
        if len(train) and (not len(values) or (values == values[0]).all()):
            found = f"is {float(values[0])}" if len(values) else "is unknown (NaN)"
            raise DataError(f"{cfg.source}: every training target of model '{model}' {found}, "
                            "so its head has nothing to learn; check data.adequate_rating (a "
                            "rating >= it counts as adequate) or drop the model")
    report["rows"] = {s: int((frame["split"] == s).sum()) for s in SPLITS}
    if report["rows"]["train"] < 2 or report["rows"]["val"] < 1:
        raise DataError(f"{cfg.source}: {report['rows']['train']} training and "
                        f"{report['rows']['val']} validation rows; need at least 2 and 1")
    prices = {m: {"input_per_mtok": p.input_per_mtok, "output_per_mtok": p.output_per_mtok}
              for m, p in zip(table.models, table.prices, strict=True)}
    report["output_tokens"] = float(np.mean(table.tokens_out)) if len(table) else 0.0
    if table.auxiliary:
        report["auxiliary"] = {m: {"adequate": round(float(np.nanmean(extra[:, k])), 4),
                                   "unknown": int(np.isnan(extra[:, k]).sum())}
                               for k, m in enumerate(table.auxiliary)}
    return LabelledPrompts(frame, report, list(table.models), prices, list(table.auxiliary))


def _targets(path: Path, models: list[str], ratings: np.ndarray,
             adequate_rating: float | None) -> np.ndarray:
    """Training targets [n, len(models)] from ratings (NaN, an unknown rating, stays NaN)."""
    if adequate_rating is not None:
        return np.where(np.isnan(ratings), np.nan, (ratings >= adequate_rating).astype(float))
    bad = np.argwhere((ratings < 0) | (ratings > 1))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise DataError(f"{path}: ratings of model '{models[col]}' must be in [0, 1] to be "
                        f"training targets; row {row} has {float(ratings[row, col])}. Set "
                        "data.adequate_rating (a rating >= it counts as adequate)")
    return ratings


def detect_format(frame: Any) -> str:
    columns = set(frame.columns)
    if {"winner_model_a", "winner_model_b"} & columns:
        return "battle"
    if "label" in columns:
        return "labelled"
    if {"se_edge", "rating_edge"} & columns:
        return "scores"
    raise DataError(f"cannot tell the data format from columns {sorted(columns)}; expected "
                    f"battle ({', '.join(BATTLE_COLUMNS)}), scores (prompt + se_edge/se_cloud "
                    "and/or rating_edge/rating_cloud) or labelled (prompt + label)")


def from_battle(frame: Any, edge_model: str | None, ties: rules.Ties) -> tuple[Any, rules.Labels]:
    """One-hot winner columns -> label 1 when the cloud model won; ties per `ties`."""
    _require_columns(frame, BATTLE_COLUMNS, "battle")
    models = sorted(set(frame["model_a"]) | set(frame["model_b"]))
    if edge_model is None:
        raise DataError(f"battle format needs data.edge_model (which model is on the edge); "
                        f"models in the data: {', '.join(map(str, models))}")
    if edge_model not in models:
        raise DataError(f"data.edge_model '{edge_model}' is not in the data; models found: "
                        f"{', '.join(map(str, models))}")
    winners = np.stack([numeric_column(frame, c, "battle format")
                        for c in ("winner_model_a", "winner_model_b", "winner_tie")], axis=1)
    bad = np.flatnonzero(~np.isin(winners, (0, 1)).all(axis=1) | (winners.sum(axis=1) != 1))
    if bad.size:
        row = int(bad[0])
        raise DataError(f"battle format: winner_model_a/winner_model_b/winner_tie must be one-hot "
                        f"0/1 per row; row {row} has {winners[row].tolist()} "
                        f"({bad.size} bad rows in all)")
    a_is_edge = (frame["model_a"] == edge_model).to_numpy()
    b_is_edge = (frame["model_b"] == edge_model).to_numpy()
    foreign = np.flatnonzero(~(a_is_edge ^ b_is_edge))
    if foreign.size:
        raise DataError(f"battle format: row {int(foreign[0])} has models "
                        f"{frame['model_a'].iloc[foreign[0]]!r} vs "
                        f"{frame['model_b'].iloc[foreign[0]]!r}; each row must pit the edge model "
                        f"'{edge_model}' against another model")
    cloud_won = np.where(a_is_edge, winners[:, 1], winners[:, 0]) == 1
    tie = winners[:, 2] == 1
    values = np.where(tie, rules.TIE_VALUE[ties], cloud_won.astype(float))
    counts = {"cloud_wins": int(cloud_won.sum()), "edge_wins": int((~cloud_won & ~tie).sum()),
              "ties": int(tie.sum())}
    out = frame.copy()
    if "id" not in out.columns:
        out["id"] = np.arange(len(out))
    return out, rules.Labels(values, counts, "battle", {"edge_model": edge_model, "ties": ties})


def from_scores(frame: Any, cfg: LabelConfig) -> tuple[Any, rules.Labels]:
    """Per-model SE and/or ratings -> labels by `cfg.rule` (`auto` picks from the columns)."""
    _require_columns(frame, ("prompt",), "scores")
    columns = set(frame.columns)
    has_pair = {"se_edge", "se_cloud"} <= columns
    has_judge = {"rating_edge", "rating_cloud"} <= columns
    has_gold = "correct_edge" in columns and bool(frame["correct_edge"].notna().all())
    rule = cfg.rule
    if rule in ("auto", "given"):
        rule = ("judge" if has_judge else "tau" if has_pair else
                "edge_wrong" if has_gold else "edge_se")
    needs = {"tau": ("se_edge", "se_cloud"), "edge_se": ("se_edge",),
             "edge_wrong": ("correct_edge",),
             "judge": ("rating_edge", "rating_cloud"),
             "combined": ("se_edge", "rating_edge", "rating_cloud")}[rule]
    _require_columns(frame, needs, f"scores (label rule '{rule}')")

    def column(name: str) -> np.ndarray:
        return numeric_column(frame, name, f"scores format (label rule '{rule}')")

    def judge() -> rules.Labels:
        return rules.judge_rule(column("rating_edge"), column("rating_cloud"), cfg.judge_margin,
                                cfg.ties)

    def se() -> rules.Labels:
        # With both models' SE the paper's tau rule; with the edge model's alone, edge_se.
        if rule == "tau" or (rule == "combined" and has_pair):
            return rules.tau_rule(column("se_edge"), column("se_cloud"), cfg.tau, cfg.epsilon,
                                  cfg.ties)
        return rules.edge_se_rule(column("se_edge"), cfg.edge_threshold, cfg.edge_quantile)

    labels = {"judge": judge, "tau": se, "edge_se": se,
              "edge_wrong": lambda: rules.edge_wrong_rule(column("correct_edge")),
              "combined": lambda: rules.combined_rule(judge(), se(), cfg.judge_weight)}[rule]()
    out = frame.copy()
    if "id" not in out.columns:
        out["id"] = np.arange(len(out))
    return out, labels


def from_labelled(frame: Any) -> tuple[Any, rules.Labels]:
    _require_columns(frame, ("prompt", "label"), "labelled")
    values = numeric_column(frame, "label", "labelled format")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
    if bad.size:
        row = int(bad[0])
        raise DataError(f"column 'label' must be a number in [0, 1]; row {row} has "
                        f"{frame['label'].iloc[row]!r} ({bad.size} bad rows in all)")
    out = frame.copy()
    if "id" not in out.columns:
        out["id"] = np.arange(len(out))
    counts = {"cloud": int((values >= 0.5).sum()), "edge": int((values < 0.5).sum())}
    return out, rules.Labels(values, counts, "given", {})


def numeric_column(frame: Any, column: str, where: str = "") -> np.ndarray:
    """Column `column` of `frame` as float64 [rows]; missing values (None/NaN) become NaN.

    Numbers stored as text ("0.5") are read as numbers (pandas.to_numeric).

    Raises:
        DataError: naming the column, the first row (0-based, as read) whose value is not a
        number (e.g. "yes"), and how many such rows there are.
    """
    pd = require("pandas", "train")
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & values.notna()).to_numpy())
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{where + ': ' if where else ''}column '{column}' must hold numbers; row "
                        f"{row} has {values.iloc[row]!r} ({bad.size} such row(s)). Convert those "
                        "values to numbers (or leave them empty) in the data file")
    return numbers.to_numpy(dtype=float)


def _prompt(value: Any, turn: Any, row: int) -> str:
    """Battle data stores conversations as JSON lists of user turns; pick the scored turn."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            turns = json.loads(value)
        except json.JSONDecodeError:
            turns = None
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            value = [{"role": "user", "content": t} for t in turns]
    elif isinstance(value, np.ndarray):
        value = [{"role": "user", "content": str(t)} for t in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise DataError(f"column 'prompt': row {row} is missing; every row needs a prompt")
    try:
        return prompt_text(value, turn)
    except Exception as exc:
        raise DataError(f"column 'prompt': row {row}: {exc}") from exc


def _assign_splits(frame: Any, cfg: DataConfig, report: dict[str, Any]) -> Any:
    rng = np.random.default_rng(cfg.seed)
    if "split" in frame.columns:
        unknown = sorted(set(frame["split"].astype(str)) - set(SPLITS))
        if unknown:
            raise DataError(f"column 'split' has unknown value(s) {unknown}; use train/val/test")
        frame["split"] = frame["split"].astype(str)
    else:
        frame["split"] = "train"
    if "source" not in frame.columns:
        frame["source"] = "data"
    train = np.flatnonzero(frame["split"].to_numpy() == "train")
    if cfg.max_rows is not None and len(train) > cfg.max_rows:
        unused = rng.permutation(train)[cfg.max_rows:]
        frame = frame.drop(index=unused).reset_index(drop=True)
        report["dropped"]["max_rows"] = int(len(unused))
        train = np.flatnonzero(frame["split"].to_numpy() == "train")
    if not (frame["split"] == "val").any():
        n_val = max(1, int(round(len(train) * cfg.val_fraction)))
        val = rng.permutation(train)[:n_val]
        frame.loc[val, "split"] = "val"
    return frame


def _require_columns(frame: Any, columns: tuple[str, ...], fmt: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{fmt} format needs column(s) {', '.join(missing)}; found "
                        f"{', '.join(map(str, frame.columns))}")
