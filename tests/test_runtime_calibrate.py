"""One calibration for any K (confroute.calibration): the tie-aware nearest achievable share,
a pair's cloud fraction as the K = 2 case of shares per model, cost targets, the warnings, and
the decision at the boundary (a score equal to the threshold goes to the cloud)."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.calibration import SMALL_SAMPLE, Calibration, calibrate
from confroute.errors import ConfigError
from confroute.policy import Policy, choose
from confroute.runtime import Router

from conftest import LADDER


def pair_probs(scores: np.ndarray) -> np.ndarray:
    """A pair predicting P(cloud needed): P(adequate) = [1 - score, 1]."""
    return np.stack([1.0 - scores, np.ones(len(scores))], axis=1)


def calibrate_pair(scores: np.ndarray, fraction: float) -> Calibration:
    scores = np.asarray(scores, dtype=float)
    policy = Policy(["edge", "cloud"], [0.5, 0.0], cut=0.5)
    return calibrate(policy, pair_probs(scores), scores=scores, shares=[1 - fraction, fraction])


def cloud_share(scores: np.ndarray, threshold: float) -> float:
    """The cloud share of the pair's decision with this threshold (the policy's own rule)."""
    index, _ = choose(pair_probs(scores), [1 - threshold, 0.0], scores, threshold)
    return float(np.mean(index == 1))


def test_the_issue_example_ten_repeats_among_twenty() -> None:
    # 5 prompts above the repeated one, 10 copies of it, 5 below: shares 0..25% or 75..100%.
    scores = np.array([0.9, 0.85, 0.8, 0.75, 0.7] + [0.5] * 10 + [0.3, 0.25, 0.2, 0.15, 0.1])
    result = calibrate_pair(scores, 0.3)
    assert result.achieved == 0.25 and cloud_share(scores, result.threshold) == 0.25
    assert result.threshold == 0.7 and result.distinct_scores == 11
    assert any("10 of 20 prompts share a score" in w for w in result.warnings)
    assert any("only 20 prompts" in w and "cloud share" in w for w in result.warnings)
    assert result.shares == {"edge": 0.75, "cloud": 0.25}


def test_all_identical_prompts() -> None:
    same = np.full(10, 0.4)
    assert calibrate_pair(same, 0.3).achieved == 0.0  # 0% is nearer 30% than 100% is
    assert cloud_share(same, calibrate_pair(same, 0.3).threshold) == 0.0
    assert calibrate_pair(same, 0.7).achieved == 1.0
    assert calibrate_pair(same, 0.5).achieved == 0.0  # equally near: the cheaper share


def test_a_score_of_one_keeps_the_threshold_in_range() -> None:
    result = calibrate_pair(np.array([1.0, 1.0, 0.2]), 0.0)
    assert 0.0 <= result.threshold <= 1.0 and result.achieved == pytest.approx(2 / 3)
    assert calibrate_pair(np.array([0.3, 0.2]), 0.0).threshold > 0.3


@pytest.mark.parametrize("seed", range(20))
def test_the_chosen_share_is_the_nearest_achievable(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    scores = rng.choice(rng.random(int(rng.integers(1, n + 1))), size=n)  # many ties
    fraction = float(rng.random())
    result = calibrate_pair(scores, fraction)
    assert cloud_share(scores, result.threshold) == pytest.approx(result.achieved)
    achievable = {cloud_share(scores, t) for t in [*scores, np.nextafter(scores.max(), 2)]}
    best = min(abs(a - fraction) for a in achievable)
    assert abs(result.achieved - fraction) == pytest.approx(best)
    assert 0.0 <= result.threshold <= 1.0


def test_a_large_untied_sample_has_no_warnings() -> None:
    scores = np.linspace(0.01, 0.99, SMALL_SAMPLE)
    result = calibrate_pair(scores, 0.3)
    assert result.warnings == () and result.achieved == pytest.approx(0.3)


@pytest.mark.parametrize("score, threshold, route", [
    (0.3, 0.3, 1),                        # equal: the cloud, as the two-model router always did
    (0.5 - 2 ** -54, 0.5, 0),             # 1 - score rounds to 0.5 = 1 - threshold
    (1e-20, 2e-20, 0),                    # 1 - score and 1 - threshold are both 1.0
    (0.1, float(np.nextafter(0.1, 1)), 0),
    (float(np.nextafter(0.1, 1)), 0.1, 1),
    (0.0, 0.0, 1), (1.0, 1.0, 1), (0.999, 1.0, 0),
])
def test_a_pair_compares_its_score_itself(score: float, threshold: float, route: int) -> None:
    """The decision is `score >= threshold` exactly, also where P(edge adequate) = 1 - score
    cannot tell the score from the threshold in float64 (the cases marked above)."""
    policy = Policy(["edge", "cloud"], [0.5, 0.0], cut=threshold)
    decision = policy.decide([1.0 - score, 1.0], score=score)
    assert decision.model_index == route and decision.route == ("cloud" if route else "edge")
    assert (decision.score, decision.threshold) == (score, threshold)
    assert decision.thresholds == {"edge": 1.0 - threshold, "cloud": 0.0}
    assert decision.reason == (f"score {score:.4f} {'>=' if route else '<'} threshold "
                               f"{threshold:.4f}")


def test_k_models_take_the_nearest_achievable_shares_with_ties() -> None:
    rng = np.random.default_rng(3)
    rows = rng.random((12, 3))
    probs = rows[rng.integers(0, 12, 40)]  # 40 prompts, repeats of 12 distinct ones
    policy = Policy(LADDER, [0.5, 0.5, 0.0])
    result = calibrate(policy, probs, shares=[0.5, 0.3, 0.2])
    chosen = result.policy.route(probs)
    assert result.shares == {m: float(np.mean(chosen == k)) for k, m in enumerate(LADDER)}
    # every threshold below the top is a real value of the prompts it was calibrated on
    for k in range(2):
        assert result.policy.thresholds[k] in probs[:, k] or result.policy.thresholds[k] > \
            probs[:, k].max()
    assert result.distinct_scores == len(np.unique(probs, axis=0))
    assert any("share a score" in w and "nearest achievable shares are small" in w
               for w in result.warnings)
    assert any("a model's share" in w for w in result.warnings)


@pytest.mark.parametrize("models", [["edge", "cloud"], LADDER])
def test_shares_and_fraction_are_checked(models: list[str]) -> None:
    policy = Policy(models, [0.5] * (len(models) - 1) + [0.0])
    probs = np.random.default_rng(0).random((30, len(models)))
    for bad in ([0.5] * (len(models) + 1), [float("nan")] * len(models), [2.0] + [-1.0] *
                (len(models) - 1)):
        with pytest.raises(ConfigError, match=f"shares must be {len(models)} numbers"):
            calibrate(policy, probs, shares=bad)
    with pytest.raises(ConfigError, match="exactly one of a target cost"):
        calibrate(policy, probs)
    with pytest.raises(ConfigError, match="has no prices"):
        calibrate(policy, probs, target_cost=0.001)


@pytest.mark.parametrize("k", [2, 3])
def test_a_cost_target_is_met_with_the_most_quality(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.random(300)
    probs = pair_probs(scores) if k == 2 else rng.random((300, 3))
    costs = np.tile([1.0, 3.0, 10.0][:k], (300, 1))
    models = LADDER[:k] if k == 3 else ["edge", "cloud"]
    policy = Policy(models, [0.5] * (k - 1) + [0.0], cut=0.5 if k == 2 else None)
    target = 2.0
    result = calibrate(policy, probs, scores=scores if k == 2 else None, costs=costs,
                       target_cost=target)
    assert result.mean_cost is not None and result.mean_cost <= target
    utility = calibrate(policy, probs, scores=scores if k == 2 else None, costs=costs,
                        target_cost=target, rule="utility")
    assert utility.policy.rule == "utility" and utility.mean_cost <= target
    with pytest.raises(ConfigError, match="below the cheapest"):
        calibrate(policy, probs, costs=costs, target_cost=0.5)
    if k == 2:  # one cut step higher would overspend: the most cloud within the budget
        below = np.unique(scores)[np.unique(scores) < result.policy.cut]
        assert np.where(scores < below.max(), 1.0, 3.0).mean() > target


@pytest.mark.parametrize("which", ["pair", "ladder"])
def test_router_calibration_sends_the_achieved_shares(which: str, router: Router,
                                                      ladder_router: Router) -> None:
    routed = router if which == "pair" else ladder_router
    prompts = ["What is 2 plus 2?"] * 10 + [f"Prove theorem {i} by induction." for i in range(10)]
    shares = [0.7, 0.3] if which == "pair" else [0.4, 0.3, 0.3]
    with pytest.warns(UserWarning, match="share a score"):
        result = routed.calibrate(prompts, shares=shares)
    assert result.prompts == 20 and result.requested == {
        "shares": dict(zip(routed.models, shares, strict=True))}
    routed.policy, saved = result.policy, routed.policy
    try:
        chosen = [d.model for d in routed.decide_batch(prompts)]
    finally:
        routed.policy = saved
    assert {m: chosen.count(m) / 20 for m in routed.models} == result.shares
    if which == "pair":  # the cloud fraction is the K = 2 view of the shares
        again = routed.calibration(prompts, 0.3)
        assert (again.threshold, again.achieved, again.shares) == \
            (result.threshold, result.achieved, result.shares)
        assert cloud_share(routed.score(prompts), result.threshold) == result.achieved
    else:
        with pytest.raises(ConfigError, match="cloud_fraction is the two-model target"):
            routed.calibration(prompts, 0.3)
