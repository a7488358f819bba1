"""Frozen MiniLM embeddings for the baselines: unit length, meaningful, cached by content."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.errors import ConfigError
from confroute.evaluation import embeddings


@pytest.mark.slow
def test_minilm_embeddings_are_unit_length_meaningful_and_cached(tmp_path):
    texts = ["How many eggs does the hen lay per week?", "Count the eggs a chicken lays in 7 days.",
             "Write a sonnet about the sea."]
    assert embeddings.cached(texts, tmp_path) is None
    vectors = embeddings.embed(texts, cache_dir=tmp_path, max_length=32)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    # in-order regardless of the length-sorted batching
    single = embeddings.embed(texts[2:], max_length=32)
    np.testing.assert_allclose(single[0], vectors[2], atol=1e-5)
    np.testing.assert_array_equal(embeddings.cached(texts, tmp_path, max_length=32), vectors)
    assert embeddings.cached(texts[:2], tmp_path, max_length=32) is None


def test_no_texts_is_an_error():
    with pytest.raises(ConfigError, match="no texts"):
        embeddings.embed([])
