"""The cascade's Python API: the edge's evidence from OpenAI-style responses, the uncertainty
model, the two-stage policy and its one calibration of (t1, t2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from confroute.cascade import (
    CascadePolicy,
    EdgeEvidence,
    MissingLogprobs,
    Uncertainty,
    fit_uncertainty,
    mean_token_logprob,
    semantic_entropy_of,
)
from confroute.cascade_calibration import calibrate_cascade, outcomes
from confroute.errors import ConfigError, InputError
from confroute.stats import binary_auroc


def response(*answers: tuple[str, list[float] | None]) -> dict[str, Any]:
    """An OpenAI chat completion with one choice per (text, token log-probs)."""
    return {"object": "chat.completion", "choices": [
        {"index": i, "message": {"role": "assistant", "content": text},
         "logprobs": None if lps is None else
         {"content": [{"token": f"t{j}", "logprob": lp, "bytes": None, "top_logprobs": []}
                      for j, lp in enumerate(lps)]}}
        for i, (text, lps) in enumerate(answers)]}


def test_mean_token_logprob_reads_choices_0():
    assert mean_token_logprob(response(("4", [-0.1, -0.3]), ("5", [-9.0]))) == pytest.approx(-0.2)


def test_a_server_rounding_a_certain_token_above_zero_is_read_as_zero():
    assert mean_token_logprob(response(("4", [1e-7, -0.2]))) == pytest.approx(-0.1)


@pytest.mark.parametrize("body", [
    response(("4", None)),
    {"choices": [{"message": {"content": "4"}}]},
    {"choices": [{"message": {"content": "4"}, "logprobs": {"content": None}}]},
    response(("", [])),
])
def test_missing_logprobs_are_their_own_error(body):
    with pytest.raises(MissingLogprobs, match="logprobs|no tokens"):
        mean_token_logprob(body)


@pytest.mark.parametrize("body", [
    {"choices": [{"logprobs": {"content": "oops"}}]},
    {"choices": [{"logprobs": {"content": [{"token": "a"}]}}]},
    {"choices": [{"logprobs": {"content": [{"logprob": "-0.1"}]}}]},
    {"choices": [{"logprobs": {"content": [{"logprob": float("nan")}]}}]},
    {"choices": [{"logprobs": {"content": [{"logprob": 0.5}]}}]},
    {"choices": [{"logprobs": {"content": [{"logprob": True}]}}]},
    {"choices": [{"logprobs": {"content": [None]}}]},
    {"choices": []},
    {"choices": "x"},
    {},
    ["not", "an", "object"],
    {"choices": ["not a choice"]},
])
def test_malformed_logprobs_are_input_errors_naming_the_field(body):
    with pytest.raises(InputError) as caught:
        mean_token_logprob(body)
    assert not isinstance(caught.value, MissingLogprobs) or body == {"choices": []}


def test_semantic_entropy_counts_meanings_not_wordings():
    same = semantic_entropy_of("What is 2 + 2?", ["4", "The answer is 4.", "4."],
                               answer_type="number")
    assert same == 0.0
    spread = semantic_entropy_of("q", ["1", "2", "3", "4", "5"], answer_type="number")
    assert spread == pytest.approx(math.log(5))


def test_semantic_entropy_weights_by_likelihood_when_every_sample_has_logprobs():
    lps = [[-0.01], [-0.01], [-3.0]]
    weighted = semantic_entropy_of("q", ["7", "7", "8"], lps, answer_type="number")
    counted = semantic_entropy_of("q", ["7", "7", "8"], answer_type="number")
    assert 0 < weighted < counted


@pytest.mark.parametrize("answers", [["4"], "44", ["4", 4]])
def test_semantic_entropy_needs_two_text_answers(answers):
    with pytest.raises(InputError):
        semantic_entropy_of("q", answers)


def test_evidence_from_a_response_with_n_samples():
    body = response(("12", [-0.2, -0.4]), ("12", [-0.5]), ("13", [-2.0]))
    e = EdgeEvidence.from_response(body, "What is 5 + 7?", "both", "number")
    assert e.mean_logprob == pytest.approx(-0.3)
    assert 0 < e.semantic_entropy < math.log(2)
    assert EdgeEvidence.from_response(body, measure="logprob").semantic_entropy is None
    with pytest.raises(ConfigError, match="measure"):
        EdgeEvidence.from_response(body, measure="entropy")  # type: ignore[arg-type]


def test_se_alone_needs_no_logprobs():
    e = EdgeEvidence.from_response(response(("Paris", None), ("London", None)), "q", "se")
    assert e.semantic_entropy == pytest.approx(math.log(2)) and e.mean_logprob is None


def synthetic(n: int = 600, seed: int = 0) -> tuple[np.ndarray, list[EdgeEvidence], np.ndarray]:
    """Router scores weakly, the edge's log-prob strongly, informative of the edge's failure."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < 0.3
    scores = np.clip(0.3 + 0.1 * wrong + rng.normal(0, 0.15, n), 0.01, 0.99)
    logprob = -np.abs(rng.normal(0.3 + 0.8 * wrong, 0.3, n))
    se = np.abs(rng.normal(0.2 + 0.2 * wrong, 0.4, n))
    return scores, [EdgeEvidence(float(a), float(b)) for a, b in zip(logprob, se, strict=True)], \
        wrong.astype(float)


def test_fitted_uncertainty_beats_the_router_alone_on_held_out_rows():
    scores, evidence, wrong = synthetic()
    test_scores, test_evidence, test_wrong = synthetic(seed=1)
    model = fit_uncertainty("both", scores, evidence, wrong)
    assert model.weights[1] > 0  # a lower log-prob means a likelier failure
    u = model(test_scores, test_evidence)
    assert ((u >= 0) & (u <= 1)).all()
    assert binary_auroc(test_wrong, u) > binary_auroc(test_wrong, test_scores) + 0.1


def test_fit_refuses_one_class_and_missing_signals():
    scores, evidence, wrong = synthetic(50)
    with pytest.raises(InputError, match="both values"):
        fit_uncertainty("logprob", scores, evidence, np.zeros(50))
    with pytest.raises(MissingLogprobs, match="prompt 0"):
        fit_uncertainty("se", scores, [EdgeEvidence(-0.1, None)] + evidence[1:], wrong)
    with pytest.raises(InputError, match="scores and evidence must be one per prompt"):
        fit_uncertainty("logprob", scores, evidence[:3], wrong)


def test_calibration_reaches_the_cloud_share_and_the_policy_reproduces_it():
    scores, evidence, wrong = synthetic()
    model = fit_uncertainty("both", scores, evidence, wrong)
    result = calibrate_cascade(model, scores, evidence, 0.3, edge_correct=1 - wrong,
                               edge_cost=0.001, cloud_cost=0.01)
    assert result.cloud_share == pytest.approx(0.3, abs=1 / 600)
    policy = result.policy
    routes = []
    for s, e in zip(scores, evidence, strict=True):
        d = policy.first(s) or policy.second(s, e)
        routes.append((d.stage, d.route))
    assert np.mean([r == "cloud" for _, r in routes]) == pytest.approx(result.cloud_share)
    assert np.mean([st == "router" for st, _ in routes]) == pytest.approx(result.direct)
    # every request not sent direct paid the edge's generation, escalated ones the cloud too
    assert result.mean_cost == pytest.approx(0.001 * result.edge_calls + 0.01 * 0.3, abs=1e-4)
    plain = calibrate_cascade(model, scores, evidence, 0.3, direct_share=0.3,
                              edge_correct=1 - wrong)
    assert plain.escalated == pytest.approx(0.0, abs=1 / 600)
    assert result.quality >= plain.quality


def test_calibration_picks_the_stage_that_knows():
    scores, evidence, wrong = synthetic()
    useless = np.random.default_rng(3).random(len(scores))
    knows = Uncertainty("logprob", (0.0, 1.0))
    result = calibrate_cascade(knows, useless, evidence, 0.3, edge_correct=1 - wrong)
    assert result.direct < 0.05 and result.escalated > 0.25


def test_cost_counts_the_edge_on_escalated_requests_exactly():
    s = np.array([0.9, 0.1, 0.1, 0.1])
    u = np.array([0.0, 0.8, 0.2, 0.1])
    direct, escalated = outcomes(s, u, 0.5, 0.5)
    assert direct.tolist() == [True, False, False, False]
    assert escalated.tolist() == [False, True, False, False]
    evidence = [EdgeEvidence(-float(x)) for x in u]
    result = calibrate_cascade(Uncertainty.unfitted("logprob"), s, evidence, 0.5,
                               direct_share=0.25, edge_cost=1.0, cloud_cost=10.0)
    assert (result.direct, result.escalated) == (0.25, 0.25)
    assert result.mean_cost == pytest.approx((10 + 11 + 1 + 1) / 4)
    assert any("only 4 prompts" in w for w in result.warnings)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"cloud_share": 1.5}, ConfigError, r"\[0, 1\]"),
    ({"cloud_share": float("nan")}, ConfigError, r"\[0, 1\]"),
    ({"cloud_share": 0.3, "edge_correct": None}, ConfigError, "edge_correct"),
    ({"cloud_share": 0.3, "edge_correct": [1.0, 0.0]}, InputError, "edge_correct"),
    ({"cloud_share": 0.3, "direct_share": -0.1}, ConfigError, r"\[0, 1\]"),
    ({"cloud_share": 0.3, "edge_correct": 1, "edge_cost": "cheap", "cloud_cost": 1},
     InputError, "edge_cost"),
])
def test_calibration_bad_arguments(kwargs, error, match):
    scores, evidence, wrong = synthetic(40)
    kwargs = {"edge_correct": 1 - wrong, **kwargs}
    if isinstance(kwargs["edge_correct"], int):
        kwargs["edge_correct"] = 1 - wrong
    with pytest.raises(error, match=match):
        calibrate_cascade(Uncertainty.unfitted("logprob"), scores, evidence, **kwargs)


def test_policy_round_trips_and_refuses_damaged_sections():
    policy = CascadePolicy(0.7, 0.4, Uncertainty("both", (0.5, 1.0, 0.3), -1.0))
    assert CascadePolicy.from_dict(policy.to_dict()) == policy
    for bad in [{}, {"t1": 0.5, "t2": 0.5}, {"t1": 0.5, "t2": 0.5, "uncertainty": {
            "measure": "se", "weights": [1.0]}}, {"t1": "x", "t2": 0.5, "uncertainty": {
            "measure": "se", "weights": [0, 1]}}, {"t1": 2.0, "t2": 0.5, "uncertainty": {
            "measure": "se", "weights": [0, 1]}}, None, "cascade"]:
        with pytest.raises(ConfigError):
            CascadePolicy.from_dict(bad)


def test_decisions_name_the_stage_and_thresholds():
    policy = CascadePolicy(0.6, 0.5, Uncertainty.unfitted("logprob"))
    direct = policy.first(0.8)
    assert direct is not None and (direct.stage, direct.route) == ("router", "cloud")
    assert policy.first(0.2) is None
    kept = policy.second(0.2, EdgeEvidence(mean_logprob=-5.0))  # sigmoid(5) ~ 0.99: escalate
    assert (kept.stage, kept.route, kept.t2) == ("edge", "cloud", 0.5)
    assert policy.second(0.2, EdgeEvidence(mean_logprob=0.0)).route == "cloud"  # sigmoid(0)
    assert CascadePolicy(0.6, 0.51, policy.uncertainty).second(
        0.2, EdgeEvidence(mean_logprob=0.0)).route == "edge"
    with pytest.raises(MissingLogprobs):
        policy.second(0.2, EdgeEvidence())


def test_the_cascade_stays_inside_the_runtime_boundary():
    import subprocess
    import sys

    code = ("import sys\n"
            "from confroute.cascade import semantic_entropy_of\n"
            "from confroute.cascade_calibration import calibrate_cascade\n"
            "semantic_entropy_of('q', ['1/2', '0.5', '3'], answer_type='number')\n"
            "bad = [m for m in ('torch', 'transformers', 'pandas', 'sklearn')"
            " if m in sys.modules]\n"
            "sys.exit(f'imported {bad}' if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("bad, message", [
    ([1, 2], "needs t1, t2 and uncertainty {measure"),
    ({"t2": 0.5, "uncertainty": {"measure": "logprob", "weights": [1, 1]}}, "t1 missing"),
    ({"t1": 0.5, "t2": 0.5, "uncertainty": {"weights": [1, 1]}}, "uncertainty.measure missing"),
    ({"t1": 0.5, "t2": 0.5, "uncertainty": {"measure": "logprob", "weights": "ab"}},
     "weights and bias must be numbers"),
    ({"t1": 0.5, "t2": 0.5, "uncertainty": {"measure": "logprob", "weights": [1, 1],
                                             "bias": {}}}, "weights and bias must be numbers"),
    ({"t1": "x" * 10_000, "t2": 0.5, "uncertainty": {"measure": "logprob", "weights": [1, 1]}},
     "above 1: never"),
    ({"t1": 0.5, "t2": 0.5, "uncertainty": {"measure": "logprob", "weights": [1, 1]},
      "pad": ["y"] * 100_000}, "needs t1, t2 and uncertainty"),
])
def test_a_damaged_section_says_what_is_wrong_in_one_short_line(bad: object, message: str):
    """No Python exception text (e.g. 'list indices must be integers'), and a huge section is
    shown cut, not whole."""
    if isinstance(bad, dict) and "pad" in bad:
        bad = {k: v for k, v in bad.items() if k != "uncertainty"} | {"uncertainty": []}
    with pytest.raises(ConfigError) as error:
        CascadePolicy.from_dict(bad)
    text = str(error.value)
    assert message in text and len(text) < 500 and "indices" not in text, text
