"""Cross-validation and transfer protocols: fixed, recorded folds; no test row is trained on."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.errors import ConfigError, DataError
from confroute.evaluation import protocols
from confroute.evaluation.groundtruth import GroundTruth


def _truth(name: str, n: int, seed: int = 0) -> GroundTruth:
    rng = np.random.default_rng(seed)
    return GroundTruth(name, np.array([f"{name}-{i}" for i in range(n)]),
                       [f"{name} prompt {i}" for i in range(n)],
                       rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float))


def test_kfold_is_fixed_balanced_and_recorded():
    truth = _truth("b", 23)
    folds, assignment = protocols.cv_folds(truth, np.eye(23), k=5, seed=3)
    again, _ = protocols.cv_folds(truth, np.eye(23), k=5, seed=3)
    assert [f.test.ids.tolist() for f in folds] == [f.test.ids.tolist() for f in again]
    assert sorted(np.bincount(assignment).tolist()) == [4, 4, 5, 5, 5]
    covered = np.concatenate([f.test_index for f in folds])
    assert sorted(covered.tolist()) == list(range(23))
    for f in folds:
        assert not set(f.train.ids) & set(f.test.ids)
        assert len(f.train) + len(f.test) == 23
        np.testing.assert_array_equal(f.test.emb, np.eye(23)[f.test_index])
    record = protocols.assignment_record(truth, assignment, 3)
    rebuilt = np.array([int(c) for c in record["fold_of_row"]])
    np.testing.assert_array_equal(rebuilt, assignment)
    assert record["ids_sha256"] == protocols.ids_digest(truth.ids)
    different, _ = protocols.cv_folds(truth, None, k=5, seed=4)
    assert [f.test.ids.tolist() for f in folds] != [f.test.ids.tolist() for f in different]


def test_run_pools_out_of_fold_scores_in_truth_order():
    truth = _truth("b", 12)
    folds, assignment = protocols.cv_folds(truth, None, k=3)
    seen = []

    def recipe(fold):
        seen.append(set(fold.train.ids))
        return np.array([float(i.split("-")[1]) for i in fold.test.ids])

    scores = protocols.run(folds, recipe, len(truth))
    np.testing.assert_array_equal(scores, np.arange(12.0))
    assert all(len(s) == 8 for s in seen)


def test_transfer_trains_on_other_benchmarks_only():
    a, b, c = _truth("a", 5), _truth("b", 7, 1), _truth("c", 4, 2)
    fold = protocols.transfer_fold([(a, np.ones((5, 2))), (b, np.zeros((7, 2)))],
                                   (c, np.full((4, 2), 2.0)))
    assert len(fold.train) == 12 and len(fold.test) == 4
    assert fold.name == "a+b->c"
    np.testing.assert_array_equal(fold.train.labels, np.r_[a.labels(), b.labels()])
    with pytest.raises(DataError, match="also training rows"):
        protocols.transfer_fold([(a, None)], (a, None))


def test_bad_protocol_input():
    with pytest.raises(ConfigError, match="at least 2 folds"):
        protocols.kfold_assignment(10, 1)
    with pytest.raises(DataError, match="cannot be split"):
        protocols.kfold_assignment(3, 5)
    truth = _truth("b", 6)
    with pytest.raises(DataError, match="6 prompts"):
        protocols.cv_folds(truth, np.zeros((5, 2)))
    folds, _ = protocols.cv_folds(truth, None, k=2)
    with pytest.raises(DataError, match="returned"):
        protocols.run(folds, lambda fold: np.zeros(1), 6)
    with pytest.raises(DataError, match="got no score"):
        protocols.run(folds, lambda fold: np.full(len(fold.test), np.nan), 6)


def test_cached_recipe_reads_instead_of_refitting(tmp_path):
    truth = _truth("b", 10)
    folds, _ = protocols.cv_folds(truth, None, k=2)
    calls = []

    def recipe(fold):
        calls.append(fold.name)
        return np.arange(len(fold.test), dtype=float)

    first = protocols.run(folds, protocols.cached(recipe, "r-v1", tmp_path), 10)
    again = protocols.run(folds, protocols.cached(recipe, "r-v1", tmp_path), 10)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 2
    protocols.run(folds, protocols.cached(recipe, "r-v2", tmp_path), 10)  # new settings refit
    assert len(calls) == 4
