"""The group prior (confroute.dataset.prior): the m-estimate, its input checks, and the
validation prior that training reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from confroute.dataset import prior
from confroute.errors import ConfigError, DataError
from confroute.stats import binary_auroc


def test_smoothed_rate_is_the_m_estimate_and_unseen_groups_get_the_global_rate():
    groups = ["a"] * 4 + ["b"] * 6
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1], dtype=float)
    fitted = prior.GroupPrior(strength=2).fit(groups, labels)
    assert fitted.global_rate == pytest.approx(0.4)
    assert fitted.score(["a", "b", "zzz"]) == pytest.approx(
        [(3 + 2 * 0.4) / 6, (1 + 2 * 0.4) / 8, 0.4])
    raw = prior.GroupPrior(strength=0).fit(groups, labels)
    assert raw.score(["a", "b"]) == pytest.approx([0.75, 1 / 6])


@pytest.mark.parametrize("groups, labels, match", [
    (["a", "b"], [0.0], "one group per label"),
    ([], [], "at least one row"),
    (["a", "b"], [0.0, np.nan], "finite numbers in"),
    (["a", "b"], [0.0, 2.0], "finite numbers in"),
    ([["a"], ["b"]], [0.0, 1.0], "one value per row"),
])
def test_bad_training_rows_are_named(groups, labels, match):
    with pytest.raises(DataError, match=match):
        prior.GroupPrior().fit(groups, np.array(labels, dtype=float))


def test_bad_strength_and_unfitted_prior():
    with pytest.raises(ConfigError, match="strength"):
        prior.GroupPrior(strength=-1).fit(["a"], np.array([1.0]))
    with pytest.raises(DataError, match="not been fitted"):
        prior.GroupPrior().score(["a"])



def test_validation_prior_scores_val_by_the_training_rates_of_its_source():
    train = pd.DataFrame({"label": [1, 1, 0, 0, 0, 1], "source": list("aabbbb")})
    val = pd.DataFrame({"label": [1, 0, 0, 1], "source": ["a", "b", "c", "a"]})
    out = prior.validation_prior(train, val, strength=0)
    assert out["group_column"] == "source" and out["groups"] == 2
    assert out["train_rates"] == {"a": 1.0, "b": 0.25}
    # val scores: a -> 1, b -> .25, c -> global .5
    assert out["val_auroc"] == pytest.approx(binary_auroc(np.array([1, 0, 0, 1]) >= 0.5,
                                                          np.array([1, 0.25, 0.5, 1])))
    flat = prior.validation_prior(train.drop(columns="source"), val)
    assert flat["group_column"] is None and flat["val_auroc"] == 0.5
    with pytest.raises(DataError, match="val split"):
        prior.validation_prior(train, val.iloc[:0])

