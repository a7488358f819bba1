"""The group prior: the router a user could write in one line, and the baseline every router
must beat.

A prior scores a prompt by the rate of a label (the cloud needed, a model adequate) on *training*
prompts of the same group: the source of a labelled dataset, the subject of an MMLU question,
the category of an MT-Bench or MMLU-Pro question. The rate is smoothed toward the global training
rate with `strength` pseudo-prompts (the m-estimate of Cestnik 1990, "Estimating probabilities:
a crucial task in machine learning"):

    prior(g) = (sum of labels in g + strength * global rate) / (prompts in g + strength)

so a group seen a handful of times scores near the global rate, and a group never seen in
training scores exactly the global rate. Within one group every prompt gets the same score, so a
prior's AUROC within a group is 0.5 by construction.

It sits in `dataset/` because training reports it at validation (`validation_prior`) and
evaluation compares every router with it (`confroute.evaluation.priors`): both build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError
from confroute.stats import binary_auroc

DEFAULT_STRENGTH = 10.0
"""Pseudo-prompts at the global rate added to every group (m of the m-estimate)."""


@dataclasses.dataclass
class GroupPrior:
    """Smoothed per-group rate of a label in [0, 1]: fit on training rows, score any rows.

    `fit(groups, labels)`: groups are any hashable values (converted to str), labels floats in
    [0, 1]; both of length n >= 1. `score(groups)` returns one float per row in [0, 1].
    Raises DataError on misaligned, empty or out-of-range input, ConfigError for strength < 0.
    """

    strength: float = DEFAULT_STRENGTH
    name: str = "prior"

    def fit(self, groups: Sequence[Any] | np.ndarray, labels: np.ndarray) -> GroupPrior:
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ConfigError(f"prior strength must be a finite number >= 0; found "
                              f"{self.strength}")
        keys = _keys(groups)
        values = np.asarray(labels, dtype=float)
        if values.ndim != 1 or len(values) != len(keys) or len(keys) == 0:
            raise DataError(f"a prior needs one group per label and at least one row; found "
                            f"{len(keys)} group(s) and {values.shape} label(s)")
        if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
            raise DataError("prior labels must be finite numbers in [0, 1]")
        self.global_rate = float(values.mean())
        names, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse, weights=values, minlength=len(names))
        counts = np.bincount(inverse, minlength=len(names))
        rates = (sums + self.strength * self.global_rate) / (counts + self.strength)
        self.rates = dict(zip(names.tolist(), rates.tolist(), strict=True))
        self.counts = dict(zip(names.tolist(), counts.tolist(), strict=True))
        return self

    def score(self, groups: Sequence[Any] | np.ndarray) -> np.ndarray:
        if not hasattr(self, "rates"):
            raise DataError("the prior has not been fitted; call fit(groups, labels) first")
        return np.array([self.rates.get(g, self.global_rate) for g in _keys(groups)],
                        dtype=float)


def _keys(groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    keys = np.asarray(groups, dtype=object)
    if keys.ndim != 1:
        raise DataError(f"groups must be one value per row; found shape {keys.shape}")
    return keys.astype(str)


def validation_prior(train: Any, val: Any, column: str = "source",
                     strength: float = DEFAULT_STRENGTH) -> dict[str, Any]:
    """The prior fitted on the training split's labels per `column` value, scored on validation.

    `train` and `val` are pandas frames with `label` (in [0, 1]) and `column`; without `column`
    every row is one group (the prior is the global rate). Returns the prior's validation AUROC
    (labels >= 0.5 positive, as the router's val_auroc) pooled, the groups used and their
    training rates, so the report shows whether the router beats knowing the group.
    """
    for name, frame in (("train", train), ("val", val)):
        if "label" not in frame.columns or len(frame) == 0:
            raise DataError(f"validation prior: the {name} split needs rows with a 'label' "
                            "column")

    def groups(frame: Any) -> np.ndarray:
        if column in frame.columns:
            return frame[column].astype(str).to_numpy()
        return np.full(len(frame), "all")

    prior = GroupPrior(strength).fit(groups(train), train["label"].to_numpy(dtype=float))
    scores = prior.score(groups(val))
    positive = val["label"].to_numpy(dtype=float) >= 0.5
    auroc = binary_auroc(positive, scores)
    return {"group_column": column if column in train.columns else None,
            "strength": strength, "val_auroc": None if np.isnan(auroc) else round(auroc, 4),
            "within_group_auroc": 0.5,
            "groups": len(prior.rates), "train_rates": {k: round(v, 4) for k, v in
                                                        sorted(prior.rates.items())[:50]}}
