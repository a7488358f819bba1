"""K-model tables from local files and the MMLU-Pro builder, with their bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from confroute.dataset import mmlu_pro
from confroute.dataset.ratings import Price, Ratings, parse_prices, read_ratings
from confroute.errors import ConfigError, DataError

MMLU_PRO = Path(__file__).resolve().parents[2].parent / "shared/data/mmlu_pro"
PRICES = {"big": {"input_per_mtok": 5.0, "output_per_mtok": 15.0},
          "small": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
          "mid": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}}


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "ratings.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["p1", "p2", "p3"], "category": list("xyx"),
                  "big": [1, 1, 0], "small": [0, 1, 0], "mid": [1, 0, 0]}).to_csv(path,
                                                                                   index=False)
    return path


def test_read_orders_models_cheapest_first_and_prices_each_prompt(table):
    t = read_ratings(table, PRICES)
    assert t.models == ["small", "mid", "big"]
    np.testing.assert_array_equal(t.ratings[:, 0], [0, 1, 0])
    assert list(t.categories) == ["x", "y", "x"]
    costs = t.costs()
    assert costs.shape == (3, 3) and (np.diff(costs, axis=1) > 0).all()
    assert costs[0, 2] == pytest.approx((1 * 5.0) / 1e6)  # "p1" = 1 estimated token, 0 output
    pair = t.ladder(["big", "small"])
    assert pair.models == ["small", "big"] and pair.ratings.shape == (3, 2)


def test_prices_from_a_yaml_file(tmp_path, table):
    path = tmp_path / "prices.yaml"
    path.write_text("small: 0.1\nbig: {input_per_mtok: 5, output_per_mtok: 15}\n")
    assert parse_prices(path) == {"small": Price(0.1, 0.1), "big": Price(5.0, 15.0)}
    assert read_ratings(table, path).models == ["small", "big"]


@pytest.mark.parametrize("prices, match", [
    ({"small": {"input_per_mtok": -1, "output_per_mtok": 1}, "big": 1}, "must be a number >= 0"),
    ({"small": {"input_per_mtok": 1}, "big": 1}, "output_per_mtok of model 'small'"),
    ({"small": "cheap", "big": 1}, "must be a number >= 0"),
    ({}, "non-empty mapping"),
])
def test_bad_prices_are_named(table, prices, match):
    with pytest.raises(DataError, match=match):
        read_ratings(table, prices)


def test_missing_model_column_price_nan_and_one_model_ladder(table, tmp_path):
    with pytest.raises(DataError, match="missing column.*huge"):
        read_ratings(table, {**PRICES, "huge": 9})
    with pytest.raises(DataError, match="no price for model.*mid"):
        read_ratings(table, {"small": 1, "big": 2}, models=["small", "mid"])
    frame = pd.read_csv(table)
    frame.loc[1, "mid"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(DataError, match="model 'mid' are missing \\(NaN\\) at 1 prompt.*b"):
        read_ratings(tmp_path / "nan.csv", PRICES)
    with pytest.raises(DataError, match="at least 2 models"):
        read_ratings(table, {"small": 1})
    with pytest.raises(DataError, match="at least 2"):
        read_ratings(table, PRICES).ladder(["big"])
    with pytest.raises(DataError, match="does not exist"):
        read_ratings(tmp_path / "nope.csv", PRICES)
    with pytest.raises(DataError, match="prices .* does not exist"):
        read_ratings(table, tmp_path / "nope.yaml")


def test_ratings_checks_its_shape():
    with pytest.raises(DataError, match="one row per prompt"):
        Ratings(["a"], ["p"], ["x", "y"], np.zeros((1, 3)), [Price(1, 1)] * 2, np.ones(1),
                np.ones(1))


needs_data = pytest.mark.skipif(not (MMLU_PRO / "outcomes.parquet").is_file(),
                                reason="MMLU-Pro files not present")
LLAMA2 = ["Llama-2-70b-hf", "Llama-2-7b-hf", "Llama-2-13b-hf"]


@needs_data
def test_mmlu_pro_ladder_from_the_real_outcomes():
    t = mmlu_pro.load(LLAMA2, {"Llama-2-7b-hf": 0.2, "Llama-2-13b-hf": 0.3,
                               "Llama-2-70b-hf": 0.9}, MMLU_PRO)
    assert t.models == ["Llama-2-7b-hf", "Llama-2-13b-hf", "Llama-2-70b-hf"]
    assert len(t) == 12032 and t.info["dropped_missing_outcome"] == 0
    assert t.ratings.mean(axis=0)[0] < t.ratings.mean(axis=0)[2]
    assert t.prompts[0].count("\nA. ") == 1 and t.tokens_out[0] > 50
    assert set(np.unique(t.ratings)) == {0.0, 1.0}


@needs_data
def test_mmlu_pro_drops_na_outcomes_and_names_unknown_models():
    t = mmlu_pro.load(["Phi-3-mini-4k-instruct", "gemini-1.5-pro-002"],
                      {"Phi-3-mini-4k-instruct": 0.13, "gemini-1.5-pro-002": 1.25}, MMLU_PRO)
    assert t.info["dropped_missing_outcome"] == 12 and len(t) == 12032 - 12
    with pytest.raises(DataError, match="no outcome column.*available: .*Llama-2-7b-hf"):
        mmlu_pro.load(["gpt-17", "Llama-2-7b-hf"], {"gpt-17": 1, "Llama-2-7b-hf": 1}, MMLU_PRO)
    with pytest.raises(DataError, match="no price"):
        mmlu_pro.load(LLAMA2, {"Llama-2-7b-hf": 1}, MMLU_PRO)
    with pytest.raises(DataError, match="at least 2 distinct"):
        mmlu_pro.load(LLAMA2[:1], {"Llama-2-70b-hf": 1}, MMLU_PRO)
    with pytest.raises(DataError, match="questions.parquet"):
        mmlu_pro.load(LLAMA2, {m: 1 for m in LLAMA2}, MMLU_PRO.parent)


@needs_data
def test_split_keeps_mmlu_derived_questions_out_of_training_when_asked():
    t = mmlu_pro.load(LLAMA2, {m: i + 1 for i, m in enumerate(LLAMA2)}, MMLU_PRO)
    plain = mmlu_pro.split(t, seed=0, test_fraction=0.3)
    assert abs((plain.splits == "test").mean() - 0.3) < 0.02
    # the split is per question: a pair built from the same file agrees on shared questions
    pair = mmlu_pro.split(t.ladder(LLAMA2[:2]), seed=0, test_fraction=0.3)
    assert (pair.splits == plain.splits).all()
    assert (plain.splits[mmlu_pro.mmlu_derived(t)] == "train").any()
    safe = mmlu_pro.split(t, seed=0, test_fraction=0.3, routellm_mmlu=True)
    derived = mmlu_pro.mmlu_derived(t)
    assert derived.sum() == 6810 and (safe.splits[derived] == "test").all()
    assert (safe.splits == "train").sum() > 3000
    assert (mmlu_pro.split(t, seed=0).splits == plain.splits).all()  # fixed by the seed
    with pytest.raises(ConfigError, match="test_fraction"):
        mmlu_pro.split(t, test_fraction=1.0)
