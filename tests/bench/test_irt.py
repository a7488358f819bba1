"""bench/irt.py's figures: the pair scores, within-category APGR (a category prior scores 0.5),
what a score sends up first, and tables that never hand a test question to training."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def outcomes(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q [n, 2], costs [n, 2], categories [n]): a weaker and a stronger model, 4 categories."""
    rng = np.random.default_rng(seed)
    categories = np.array(list("abcd"))[np.arange(n) % 4]
    rate = {"a": (0.2, 0.7), "b": (0.5, 0.6), "c": (0.1, 0.3), "d": (0.6, 0.9)}
    p = np.array([rate[c] for c in categories])
    q = (rng.random((n, 2)) < p).astype(float)
    costs = np.c_[np.full(n, 1e-4), np.full(n, 1e-3)] * (1 + rng.random((n, 1)))
    return q, costs, categories


def test_pair_scores_rank_what_they_say() -> None:
    from irt_stats import CHOICES

    p = np.array([[0.9, 0.95], [0.1, 0.9], [0.1, 0.15], [0.6, 0.3]])
    # edge failure sends the question both models fail (row 2) up first; gain and joint send
    # the one only the cloud answers (row 1)
    assert np.argmax(CHOICES["edge failure"](p)) in (1, 2)
    assert CHOICES["edge failure"](p)[2] > CHOICES["edge failure"](p)[0]
    assert np.argmax(CHOICES["gain"](p)) == 1 and np.argmax(CHOICES["joint"](p)) == 1
    assert CHOICES["gain"](p)[3] < 0.5  # the edge is the better bet: gain below its midpoint
    for score in CHOICES.values():
        assert np.all((score(p) >= 0) & (score(p) <= 1))


def test_a_category_prior_scores_half_within_categories_and_the_oracle_more() -> None:
    from irt_stats import pair_stats

    q, costs, categories = outcomes()
    rates = {c: q[categories == c].mean(0) for c in "abcd"}
    prior = np.array([1 - rates[c][0] for c in categories])
    out = pair_stats(prior, {}, q, costs, categories, samples=20, seed=0)
    assert out["within"] == pytest.approx(0.5, abs=1e-12)
    assert out["ci"]["within"]["low"] == pytest.approx(0.5) and out["ci"]["within"]["high"] == \
        pytest.approx(0.5)
    oracle = pair_stats(q[:, 1] - q[:, 0], {"prior": prior}, q, costs, categories, 0, 0)
    assert oracle["within"] > 0.8 and oracle["apgr"] > out["apgr"]
    assert oracle["within - prior"] == pytest.approx(oracle["within"] - 0.5)
    assert oracle["cost_at_95"] < out["cost_at_95"] <= 1.0
    # the oracle's first 20% are the questions only the cloud answers
    assert oracle["first_sent"]["cloud only"] == 1.0
    assert sum(oracle["first_sent"].values()) == pytest.approx(1.0)


def test_random_scores_sit_near_half() -> None:
    from irt_stats import random_pair

    q, costs, categories = outcomes(2000)
    out = random_pair(q, costs, categories, seeds=10)
    assert abs(out["apgr"] - 0.5) < 0.03 and abs(out["within"] - 0.5) < 0.03


def test_ladder_stats_gap_to_itself_is_zero() -> None:
    from irt_stats import ladder_stats

    q, costs, categories = outcomes()
    q3 = np.c_[q[:, :1], np.maximum(q[:, 0], q[:, 1]) * (np.arange(len(q)) % 2), q[:, 1:]]
    c3 = np.c_[costs[:, :1], costs.mean(1, keepdims=True), costs[:, 1:]]
    p = np.random.default_rng(1).random(q3.shape)
    for policy in ("threshold", "utility"):
        out = ladder_stats(p, p, q3, c3, categories, policy, 10, 0)
        assert out["area - prior"] == 0.0 and out["within - prior"] == 0.0
        assert out["ci"]["area"]["low"] <= out["area"] <= out["ci"]["area"]["high"]


def test_bench_tables_keep_test_questions_away_from_training(tmp_path: Path) -> None:
    import irt
    from ladder_confroute import write_table

    from confroute.dataset.ratings import Price, Ratings, read_ratings

    n = 40
    table = Ratings(np.array([f"q{i}" for i in range(n)]), [f"question {i}?" for i in range(n)],
                    ["small", "large"], np.c_[np.arange(n) % 2, np.ones(n)],
                    [Price(0.1, 0.2), Price(1.0, 2.0)], np.full(n, 10.0), np.full(n, 5.0),
                    np.array(["math"] * n), np.array(["train", "val", "test", "train"] * 10),
                    auxiliary=["other"], auxiliary_ratings=np.where(np.arange(n) % 5 == 0,
                                                                    np.nan, 1.0)[:, None])
    source, prices = write_table(table, tmp_path)
    back = read_ratings(source, prices, ["small", "large"], ["other"])
    assert "test" not in set(back.splits) and len(back) == 30
    assert np.isnan(back.auxiliary_ratings).sum() == np.isnan(
        table.auxiliary_ratings[table.splits != "test"]).sum()
    few = irt.few_table(table, np.array([0, 3, 4, 7, 8, 11, 12, 15, 16, 19]))
    assert list(few.splits[few.splits != "test"]) == ["train"] * 9 + ["val"]
    assert (few.splits == "test").sum() == 10 and few.auxiliary == []
    dropped = irt.table_without_models(table, ("other",))
    assert dropped.auxiliary == [] and dropped.auxiliary_ratings.shape == (n, 0)


def clustered(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit embeddings [n, 8], outcomes [n, 2], splits [n]): the edge answers the questions of
    one cluster, the cloud those of both but a few."""
    rng = np.random.default_rng(seed)
    easy = np.arange(n) % 2 == 0
    emb = rng.normal(size=(n, 8)) * 0.3 + np.where(easy[:, None], 1.0, -1.0) * np.eye(8)[0]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = np.c_[easy, rng.random(n) < 0.9].astype(float)
    splits = np.array(["train", "train", "val", "test", "train"] * (n // 5))
    return emb, y, splits


def test_the_tuned_knn_learns_the_clusters_and_reports_its_choice() -> None:
    from irt_knn import DISTANCES, KS, WEIGHTS, tuned_knn

    from confroute.stats import binary_auroc

    emb, y, splits = clustered()
    probs, choice = tuned_knn(emb, y, splits)
    test = splits == "test"
    assert probs.shape == (test.sum(), 2) and np.all((probs >= 0) & (probs <= 1))
    assert binary_auroc(y[test, 0] == 1, probs[:, 0]) > 0.95
    assert choice["k"] in KS and choice["distance"] in DISTANCES and choice["weights"] in WEIGHTS
    assert choice["grid_size"] == len(KS) * len(DISTANCES) * len(WEIGHTS)
    assert choice["val_brier"] < choice["val_brier_of_the_mean"]


def test_the_tuned_knn_never_reads_test_outcomes() -> None:
    from irt_knn import tuned_knn

    emb, y, splits = clustered()
    flipped = y.copy()
    flipped[splits == "test"] = 1.0 - flipped[splits == "test"]
    a, choice_a = tuned_knn(emb, y, splits)
    b, choice_b = tuned_knn(emb, flipped, splits)
    np.testing.assert_array_equal(a, b)
    assert choice_a == choice_b
    with pytest.raises(ValueError, match="train, val and test"):
        tuned_knn(emb, y, np.where(splits == "val", "train", splits))
