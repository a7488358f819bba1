"""The doubles answer right exactly when the real model did, and the judge double prefers the
right answer, on real MMLU-Pro and RouteLLM (GSM8K) outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from doubles import GSM8K_CLOUD, GSM8K_EDGE, data_dir, gsm8k, judge_ask, mmlu_pro

from confroute.evaluation.judge import judge_pairs

PAIR = ["Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct"]


@pytest.fixture(scope="module")
def pro():
    if data_dir("CONFROUTE_MMLU_PRO_DIR", "mmlu_pro") is None:
        pytest.skip("MMLU-Pro outcomes not found: set CONFROUTE_MMLU_PRO_DIR")
    return mmlu_pro(PAIR)


@pytest.fixture(scope="module")
def gsm():
    if data_dir("CONFROUTE_ROUTELLM_DIR", "routellm") is None:
        pytest.skip("RouteLLM outcomes not found: set CONFROUTE_ROUTELLM_DIR")
    return gsm8k()


@pytest.mark.parametrize("which", ["pro", "gsm"])
def test_a_model_double_is_right_exactly_where_the_real_model_was(
        request: pytest.FixtureRequest, which: str) -> None:
    outcomes = request.getfixturevalue(which)
    models = PAIR if which == "pro" else [GSM8K_EDGE, GSM8K_CLOUD]
    rows = np.random.default_rng(0).choice(len(outcomes.prompts), 300, replace=False)
    for model in models:
        graded = np.array([outcomes.grade(outcomes.prompts[i],
                                          outcomes.answer(model, outcomes.prompts[i]))
                           for i in rows])
        assert (graded == outcomes.correct[model][rows]).all()
        assert 0.2 < graded.mean() < 0.95  # both outcomes occur: the test can fail


def test_the_judge_double_prefers_the_right_answer_in_both_orders(pro) -> None:
    rows = range(200)
    edge, cloud = PAIR
    pairs = [(pro.prompts[i], pro.answer(edge, pro.prompts[i]), pro.answer(cloud, pro.prompts[i]))
             for i in rows]
    for cloud_first in (False, True):
        winners = judge_pairs(pairs, judge_ask(pro), [cloud_first] * len(pairs))
        expected = ["edge" if e and not c else "cloud" if c and not e else "tie"
                    for e, c in zip(pro.correct[edge][:200], pro.correct[cloud][:200],
                                    strict=True)]
        assert winners == expected
    assert {"edge", "cloud", "tie"} <= set(expected)
