"""Ground-truth loaders: RouteLLM's conventions on the real files, and labelled datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from confroute.errors import DataError
from confroute.evaluation import groundtruth as gt

ROUTELLM = Path(os.environ.get(gt.ROUTELLM_DIR_ENV, "/work/shared/data/routellm"))
needs_data = pytest.mark.skipif(not (ROUTELLM / "evals").is_dir(),
                                reason=f"RouteLLM evals not at {ROUTELLM}")

# RouteLLM's routellm/evals/mmlu/domains.py order: eval_idx indexes this concatenation.
ROUTELLM_MMLU_ORDER = [
    "high_school_european_history", "business_ethics", "clinical_knowledge", "medical_genetics",
    "high_school_us_history", "high_school_physics", "high_school_world_history", "virology",
    "high_school_microeconomics", "econometrics", "college_computer_science",
    "high_school_biology", "abstract_algebra", "professional_accounting", "philosophy",
    "professional_medicine", "nutrition", "global_facts", "machine_learning", "security_studies",
    "public_relations", "professional_psychology", "prehistory", "anatomy", "human_sexuality",
    "college_medicine", "high_school_government_and_politics", "college_chemistry",
    "logical_fallacies", "high_school_geography", "elementary_mathematics", "human_aging",
    "college_mathematics", "high_school_psychology", "formal_logic", "high_school_statistics",
    "international_law", "high_school_mathematics", "high_school_computer_science",
    "conceptual_physics", "miscellaneous", "high_school_chemistry", "marketing",
    "professional_law", "management", "college_physics", "jurisprudence", "world_religions",
    "sociology", "us_foreign_policy", "high_school_macroeconomics", "computer_security",
    "moral_scenarios", "moral_disputes", "electrical_engineering", "astronomy", "college_biology",
]


def _contaminated(name: str) -> list[dict]:
    path = ROUTELLM / "evals" / name / "contaminated_prompts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_data
def test_mt_bench_routes_on_turn_one_and_averages_both_turn_scores():
    truth = gt.load_benchmark("mt-bench", ROUTELLM)
    assert len(truth) == 80 - 8 and truth.info["dropped_contaminated"] == 8
    judgements = pd.read_json(ROUTELLM / "evals/mt_bench/judgements.jsonl", lines=True)
    questions = pd.read_json(ROUTELLM / "evals/mt_bench/question.jsonl", lines=True)
    row = list(truth.ids).index("mt_bench/111")
    both = judgements[(judgements.question_id == 111) & (judgements.model == gt.CLOUD_MODEL)]
    assert truth.quality_cloud[row] == pytest.approx(both.score.mean())
    assert len(both) == 2
    turns = questions[questions.question_id == 111].turns.iloc[0]
    assert truth.prompts[row] == turns[0]
    assert truth.answers_cloud[row] and truth.tokens_out_cloud[row] > 0
    # contaminated questions are gone: eval_idx counts the 80 first turns, then the 80 second
    dropped = {int(questions.question_id.iloc[c["eval_idx"] % 80])
               for c in _contaminated("mt_bench")}
    assert not {f"mt_bench/{q}" for q in dropped} & set(truth.ids)


@needs_data
def test_gsm8k_drops_contaminated_by_text_and_keeps_test_order_ids():
    truth = gt.load_benchmark("gsm8k", ROUTELLM)
    raw = pd.read_csv(ROUTELLM / "evals/gsm8k/gsm8k_responses.csv")
    assert len(truth) == len(raw) - 12
    dropped = {c["eval_idx"] for c in _contaminated("gsm8k")}
    assert set(truth.ids) == {f"gsm8k/{i}" for i in range(len(raw)) if i not in dropped}
    i = list(truth.ids).index("gsm8k/5")
    assert truth.prompts[i] == raw.prompt[5]
    assert truth.quality_edge[i] == float(raw[gt.EDGE_MODEL][5])
    assert truth.quality_cloud[i] == float(raw[gt.CLOUD_MODEL][5])
    assert truth.quality_edge.mean() == pytest.approx(0.6373, abs=1e-4)
    assert truth.quality_cloud.mean() == pytest.approx(0.8577, abs=1e-4)


@needs_data
def test_mmlu_eval_idx_counts_rows_in_routellm_domain_order():
    truth = gt.load_benchmark("mmlu", ROUTELLM)
    assert len(truth) == 14042 - 5
    concatenated = []
    for subject in ROUTELLM_MMLU_ORDER:
        frame = pd.read_csv(ROUTELLM / f"evals/mmlu/responses/mmlu_{subject}.csv")
        concatenated += [(f"mmlu/{subject}/{i}", p) for i, p in enumerate(frame.prompt)]
    kept = set(truth.ids)
    for entry in _contaminated("mmlu"):
        pid, prompt = concatenated[entry["eval_idx"]]
        assert prompt == entry["eval_prompt"] and pid not in kept


@needs_data
def test_labels_are_the_judge_rule_on_the_same_outcomes():
    truth = gt.load_benchmark("gsm8k", ROUTELLM)
    np.testing.assert_array_equal(truth.labels(),
                                  (truth.quality_cloud > truth.quality_edge).astype(float))


def test_labelled_dataset(tmp_path):
    path = tmp_path / "rated.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "prompt": ["x", "y", "z"], "rating_edge": [1, 5, 9],
                  "rating_cloud": [8, 5, 2]}).to_csv(path, index=False)
    truth = gt.load_truth(str(path))
    assert list(truth.ids) == ["a", "b", "c"]
    np.testing.assert_array_equal(truth.labels(), [1, 0, 0])
    assert truth.tokens_in.tolist() == [1, 1, 1]
    sub = truth.subset(np.array([2, 0]))
    assert list(sub.ids) == ["c", "a"] and sub.prompts == ["z", "x"]


@pytest.mark.parametrize(("frame", "message"), [
    ({"prompt": ["x"], "rating_edge": [1]}, "rating_cloud"),
    ({"prompt": ["x", "y"], "rating_edge": [1, None], "rating_cloud": [1, 2]}, "not finite"),
    ({"id": [1, 1], "prompt": ["x", "y"], "rating_edge": [1, 2], "rating_cloud": [1, 2]},
     "repeats id"),
    ({"prompt": ["x", ""], "rating_edge": [1, 2], "rating_cloud": [1, 2]}, "no prompt text"),
    ({"prompt": ["x", "y"], "rating_edge": [1, "good"], "rating_cloud": [1, 2]},
     "column 'rating_edge' must hold numbers; row 1 has 'good'"),
    ({"prompt": ["x", "y"], "rating_edge": [1, 2], "rating_cloud": ["yes", 2]},
     "column 'rating_cloud' must hold numbers; row 0 has 'yes'"),
    ({"prompt": ["x", "y"], "rating_edge": [1, 2], "rating_cloud": [1, 2], "tokens_in": [1, 1],
      "tokens_out_edge": [1, "many"], "tokens_out_cloud": [1, 1]},
     "column 'tokens_out_edge' must hold numbers; row 1"),
])
def test_bad_labelled_dataset(tmp_path, frame, message):
    path = tmp_path / "bad.csv"
    pd.DataFrame(frame).to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        gt.load_truth(str(path))


def test_missing_routellm_dir_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(gt.ROUTELLM_DIR_ENV, raising=False)
    with pytest.raises(DataError, match="--routellm-dir"):
        gt.load_benchmark("gsm8k")
    with pytest.raises(DataError, match="no evals/ folder"):
        gt.load_benchmark("gsm8k", tmp_path)
    with pytest.raises(DataError, match="unknown benchmark"):
        gt.load_benchmark("hellaswag", ROUTELLM if ROUTELLM.is_dir() else tmp_path)


def test_labelled_dataset_split_suffix(tmp_path):
    path = tmp_path / "rated.csv"
    pd.DataFrame({"prompt": ["x", "y", "z"], "rating_edge": [1, 5, 9], "rating_cloud": [8, 5, 2],
                  "split": ["train", "test", "test"]}).to_csv(path, index=False)
    truth = gt.load_truth(f"{path}:test")
    assert truth.prompts == ["y", "z"]
    with pytest.raises(DataError, match="no rows in split 'val'"):
        gt.load_truth(f"{path}:val")


@needs_data
def test_reference_figures_on_real_gsm8k():
    from confroute.evaluation import metrics

    truth = gt.load_benchmark("gsm8k", ROUTELLM)
    qe, qc = truth.quality_edge, truth.quality_cloud
    oracle = metrics.summary(metrics.sweep(metrics.oracle_scores(qe, qc), qe, qc))
    # binary outcomes: the oracle sends the (cloud right, edge wrong) prompts first and the gap
    # closes once a share q_cloud - q_edge of all prompts has gone, so CPT(x) = x (q_c - q_e)
    for level in (0.2, 0.5, 0.8):
        assert oracle[metrics.cpt_key(level)] == pytest.approx(level * (qc.mean() - qe.mean()))
    mean, _ = metrics.random_average(qe, qc, seeds=20)
    assert mean["apgr"] == pytest.approx(0.5, abs=0.03)
    assert mean["cpt_50"] == pytest.approx(0.5, abs=0.05)


def test_a_sample_is_seeded_stratified_by_source_and_aligned():
    n = 300
    groups = np.array(["mmlu"] * 200 + ["gsm8k"] * 90 + ["mt-bench"] * 10)
    truth = gt.GroundTruth("toy", np.array([f"id-{i}" for i in range(n)]),
                           [f"prompt {i}" for i in range(n)], np.arange(n) % 2.0,
                           np.ones(n), groups=groups)
    sample = truth.sample(30, seed=3)
    assert len(sample) == 30 and sample.info["subset_of"] == n
    assert dict(zip(*np.unique(sample.groups, return_counts=True), strict=True)) == {
        "mmlu": 20, "gsm8k": 9, "mt-bench": 1}
    rows = np.array([int(i.split("-")[1]) for i in sample.ids])
    assert [int(p.split()[1]) for p in sample.prompts] == rows.tolist()
    np.testing.assert_array_equal(sample.quality_edge, rows % 2.0)
    assert list(truth.sample(30, seed=3).ids) == list(sample.ids)
    assert list(truth.sample(30, seed=4).ids) != list(sample.ids)
    assert truth.sample(n + 5) is truth
    with pytest.raises(DataError, match="sample size must be >= 1"):
        truth.sample(0)


def test_ground_truth_built_in_python_names_text_among_the_numbers():
    with pytest.raises(DataError, match="cloud quality must be numbers"):
        gt.GroundTruth("api", np.array(["a", "b"]), ["x", "y"], np.array([1.0, 2.0]),
                       np.array(["yes", "no"], dtype=object))
