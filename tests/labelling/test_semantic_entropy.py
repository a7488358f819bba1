"""Clustering and semantic entropy on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from confroute.errors import ConfigError
from confroute.labelling import entropy, equivalence
from confroute.stats import binary_auroc

LN2, LN3, LN5 = math.log(2), math.log(3), math.log(5)


# Answer extraction (numbers, letters, text, correctness) is tested in test_answers.py.


def test_exact_clusters_in_first_seen_order_with_invalid_marked():
    ids = equivalence.ExactEquivalence().cluster("q", ["5", "7", None, "5", "7", "9"])
    assert ids == [0, 1, -1, 0, 1, 2]


def test_discrete_entropy_exact_values():
    assert entropy.semantic_entropy([0, 0, 0, 0, 0]).discrete == 0.0
    assert entropy.semantic_entropy([0, 1, 2, 3, 4]).discrete == pytest.approx(LN5)
    # counts 2, 2, 1 of 5: -(2 * 0.4 ln 0.4 + 0.2 ln 0.2)
    expected = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    result = entropy.semantic_entropy([0, 1, 0, 1, 2])
    assert result.discrete == pytest.approx(expected)
    assert result.n_clusters == 3 and result.cluster_counts == [2, 2, 1]


def test_invalid_answers_are_dropped_or_one_cluster_never_many():
    ids = [0, 0, -1, -1, -1]
    dropped = entropy.semantic_entropy(ids, invalid="drop")
    assert dropped.discrete == 0.0 and dropped.n_invalid == 3 and dropped.n_clusters == 1
    shared = entropy.semantic_entropy(ids, invalid="cluster")
    assert shared.discrete == pytest.approx(-(0.4 * math.log(0.4) + 0.6 * math.log(0.6)))
    assert shared.n_clusters == 2  # three invalid answers are one cluster, not three
    nothing = entropy.semantic_entropy([-1, -1, -1, -1], invalid="drop")
    assert nothing.discrete == pytest.approx(math.log(4)) and nothing.weighted is None


def test_likelihood_weighted_entropy_uses_normalised_cluster_probabilities():
    # two samples in cluster 0 with mean log-prob ln 0.5 each, one in cluster 1 with ln 0.25:
    # p0 ∝ 0.5 + 0.5 = 1.0, p1 ∝ 0.25 -> normalised 0.8 / 0.2
    logprobs = [[math.log(0.5)] * 2, [math.log(0.5)] * 3, [math.log(0.25)]]
    result = entropy.semantic_entropy([0, 0, 1], logprobs)
    assert result.weighted == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    # the paper's estimator: -(1/|C|) sum_c log p(c|x), unnormalised: -(ln 1.0 + ln 0.25) / 2
    assert result.paper == pytest.approx(-(0.0 + math.log(0.25)) / 2)


def test_length_normalisation_stops_short_answers_taking_all_weight():
    # same per-token confidence, one answer 1 token long and one 20 tokens long
    logprobs = [[math.log(0.5)], [math.log(0.5)] * 20]
    normalised = entropy.semantic_entropy([0, 1], logprobs, normalise=True)
    summed = entropy.semantic_entropy([0, 1], logprobs, normalise=False)
    assert normalised.weighted == pytest.approx(LN2)
    assert summed.weighted < 1e-4  # the 1-token answer takes almost all the weight


def test_missing_logprobs_leave_only_the_discrete_variant():
    result = entropy.semantic_entropy([0, 1, 1], [[-0.1], None, [-0.2]])
    assert result.weighted is None and result.paper is None
    assert result.discrete == pytest.approx(-(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)))


def test_choice_entropy_from_letter_logprobs():
    value, best = entropy.choice_entropy({"A": math.log(0.2), "B": math.log(0.2),
                                          "C": math.log(0.1), "D": math.log(0.1)})
    # renormalised to 1/3, 1/3, 1/6, 1/6
    expected = -(2 * (1 / 3) * math.log(1 / 3) + 2 * (1 / 6) * math.log(1 / 6))
    assert value == pytest.approx(expected) and best in ("A", "B")
    assert entropy.choice_entropy({"A": 0.0, "B": -50.0})[1] == "A"


def test_auroc_exact_values_and_ties():
    assert binary_auroc([True, True, False, False], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert binary_auroc([True, True, False, False], [0.1, 0.2, 0.9, 0.8]) == 0.0
    assert binary_auroc([True, False], [0.5, 0.5]) == 0.5
    assert binary_auroc([True, False, True], [0.3, 0.7, 0.5]) == pytest.approx(0.0)
    assert np.isnan(binary_auroc([True], [1.0]))


def test_summary_counts_zero_entropy_share():
    summary = entropy.summarise([0.0, 0.0, LN2, LN3])
    assert summary["n"] == 4 and summary["zero_share"] == 0.5 and summary["max"] == round(LN3, 4)


def test_equivalence_spec_is_validated():
    assert isinstance(equivalence.make_equivalence("exact"), equivalence.ExactEquivalence)
    with pytest.raises(ConfigError, match="exact"):
        equivalence.make_equivalence("fuzzy")


# --- NLI equivalence with a real transformers classifier ------------------------------------


def _nli_model(folder, tokenizer_dir, entail_bias: float):
    """A tiny BERT NLI classifier whose head always says entailment (bias > 0) or
    contradiction (bias < 0): a real checkpoint with known behaviour."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=3, id2label={0: "CONTRADICTION", 1: "NEUTRAL",
                                                2: "ENTAILMENT"})
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-entail_bias, 0.0, entail_bias]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_nli_equivalence_clusters_by_bidirectional_entailment(tmp_path, tiny_encoder_dir):
    answers = ["Paris", "It is Paris.", None, "Lyon", "Paris"]
    agree = equivalence.make_equivalence(
        "nli:" + _nli_model(tmp_path / "yes", tiny_encoder_dir, 5.0))
    assert agree.cluster("Capital of France?", answers) == [0, 0, -1, 0, 0]
    refuse = equivalence.NliEquivalence(_nli_model(tmp_path / "no", tiny_encoder_dir, -5.0))
    # nothing entails anything: each distinct answer is its own meaning; identical text is one
    assert refuse.cluster("Capital of France?", answers) == [0, 1, -1, 2, 0]
    assert refuse.entails([("a", "b"), ("c", "d")]) == [False, False]


def test_nli_model_without_entailment_label_is_refused(tmp_path, tiny_encoder_dir):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="entailment"):
        equivalence.NliEquivalence(str(tmp_path))
    with pytest.raises(ConfigError, match="could not load NLI model"):
        equivalence.NliEquivalence(str(tmp_path / "missing"))
