"""Tie-aware calibration: the achievable cloud share nearest the request, with warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from confroute.runtime import SMALL_SAMPLE, Router, calibrate_threshold, decide


def cloud_share(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean([decide(s, threshold) == "cloud" for s in scores]))


def test_the_issue_example_ten_repeats_among_twenty() -> None:
    # 5 prompts above the repeated one, 10 copies of it, 5 below: shares 0..25% or 75..100%.
    scores = np.array([0.9, 0.85, 0.8, 0.75, 0.7] + [0.5] * 10 + [0.3, 0.25, 0.2, 0.15, 0.1])
    result = calibrate_threshold(scores, 0.3)
    assert result.achieved == 0.25 and cloud_share(scores, result.threshold) == 0.25
    assert result.threshold == 0.7 and result.distinct_scores == 11
    assert any("10 of 20 prompts share a score" in w for w in result.warnings)
    assert any("only 20 prompts" in w for w in result.warnings)


def test_all_identical_prompts() -> None:
    same = np.full(10, 0.4)
    assert calibrate_threshold(same, 0.3).achieved == 0.0  # 0% is nearer 30% than 100% is
    assert cloud_share(same, calibrate_threshold(same, 0.3).threshold) == 0.0
    assert calibrate_threshold(same, 0.7).achieved == 1.0
    assert calibrate_threshold(same, 0.5).achieved == 0.0  # equally near: the cheaper share


def test_a_score_of_one_keeps_the_threshold_in_range() -> None:
    scores = np.array([1.0, 1.0, 0.2])
    result = calibrate_threshold(scores, 0.0)
    assert 0.0 <= result.threshold <= 1.0 and result.achieved == pytest.approx(2 / 3)
    assert calibrate_threshold(np.array([0.3, 0.2]), 0.0).threshold > 0.3


@pytest.mark.parametrize("seed", range(20))
def test_the_chosen_share_is_the_nearest_achievable(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    scores = rng.choice(rng.random(int(rng.integers(1, n + 1))), size=n)  # many ties
    fraction = float(rng.random())
    result = calibrate_threshold(scores, fraction)
    assert cloud_share(scores, result.threshold) == pytest.approx(result.achieved)
    achievable = {cloud_share(scores, t) for t in [*scores, np.nextafter(scores.max(), 2)]}
    best = min(abs(a - fraction) for a in achievable)
    assert abs(result.achieved - fraction) == pytest.approx(best)
    assert 0.0 <= result.threshold <= 1.0


def test_a_large_untied_sample_has_no_warnings() -> None:
    scores = np.linspace(0.01, 0.99, SMALL_SAMPLE)
    result = calibrate_threshold(scores, 0.3)
    assert result.warnings == () and result.achieved == pytest.approx(0.3)


def test_router_calibrate_warns_and_calibration_explains(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact, variant="fp32")
    prompts = ["What is 2 plus 2?"] * 10 + [f"Prove theorem {i} by induction." for i in range(10)]
    with pytest.warns(UserWarning, match="share a score"):
        threshold = router.calibrate(prompts, 0.3)
    result = router.calibration(prompts, 0.3)
    assert result.threshold == threshold and result.prompts == 20
    assert cloud_share(router.score(prompts), threshold) == result.achieved
