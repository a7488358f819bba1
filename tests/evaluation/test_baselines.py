"""Baseline router families on small synthetic embeddings with a known signal."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.errors import ConfigError, DataError
from confroute.evaluation import baselines, metrics


def _data(n: int = 600, dim: int = 8, seed: int = 0):
    """Unit vectors; the cloud is needed for prompts near one direction (plus label noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    p = 1 / (1 + np.exp(-12 * x[:, 0]))
    return x, (rng.random(n) < p).astype(float)


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float(((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean())


@pytest.mark.parametrize("name", ["knn", "mlp", "mf", "sw"])
def test_learned_baselines_find_the_signal_out_of_sample(name):
    x, y = _data()
    small = {"epochs": 60} if name in ("mlp", "mf") else {}  # keeps the test fast
    router = baselines.make(name, **small).fit(x[:400], y[:400])
    scores = router.score(x[400:])
    assert scores.shape == (200,) and np.isfinite(scores).all()
    assert _auroc(y[400:], scores) > 0.75
    # and routing by them beats random on the quality curve the labels induce
    qe, qc = 1 - y[400:], np.ones(200)
    assert metrics.apgr(metrics.sweep(scores, qe, qc)) > 0.6


def test_random_router_is_seeded_and_ignores_the_prompt():
    x, y = _data(50)
    a = baselines.make("random", seed=3).fit(x, y).score(x)
    assert np.array_equal(a, baselines.make("random", seed=3).score(x[::-1]))
    assert not np.array_equal(a, baselines.make("random", seed=4).score(x))


def test_knn_by_hand():
    keys = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    router = baselines.KNNRouter(k=2).fit(keys, np.array([1.0, 1.0, 0.0, 0.0]))
    np.testing.assert_allclose(router.score(np.array([[1.0, 0.0], [0.0, 1.0]])), [1.0, 0.5])


def test_sw_is_the_weighted_bradley_terry_maximum_likelihood():
    x, y = _data(80, seed=1)
    query = x[:1]
    score = baselines.SWRankingRouter().fit(x, y).score(query)[0]
    sims = x @ query[0]
    w = 10 * 10 ** (sims / sims.max())
    # BT with two players: P(cloud wins) = sigmoid(d); maximise the weighted likelihood on a grid
    grid = np.linspace(-6, 6, 120001)
    p = 1 / (1 + np.exp(-grid))
    loglik = np.sum(w * y) * np.log(p) + np.sum(w * (1 - y)) * np.log(1 - p)
    assert score == pytest.approx(p[np.argmax(loglik)], abs=1e-4)


def test_mf_is_a_two_model_factorisation():
    x, y = _data(200)
    router = baselines.MFRouter(dim=8, epochs=20).fit(x, y)
    assert tuple(router._net.models.weight.shape) == (2, 8)
    assert tuple(router._net.proj.weight.shape) == (8, 8)


def test_bad_training_input():
    with pytest.raises(DataError, match="one embedding row per label"):
        baselines.make("knn").fit(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        baselines.make("sw").fit(np.zeros((2, 4)), np.array([0.0, 2.0]))
    with pytest.raises(ConfigError, match="unknown baseline"):
        baselines.make("xgboost")
    with pytest.raises(ConfigError, match="k must be"):
        baselines.make("knn", k=0).fit(np.zeros((2, 4)), np.zeros(2))
