"""Label rules on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from confroute.dataset import labels
from confroute.errors import DataError


def test_tau_rule_follows_the_paper() -> None:
    se_edge = np.array([1.0, 0.5, 1.0, 0.95, 0.3])
    se_cloud = np.array([0.5, 1.0, 1.05, 1.0, 0.0])
    # delta = |c - e| / c: 0.5/0.5=1 (cloud wins), 0.5/1 (edge wins), 0.05/1.05 (tie),
    # 0.05/1 (tie), 0.3/eps (cloud wins; SE_cloud hits the epsilon guard)
    out = labels.tau_rule(se_edge, se_cloud, tau=0.1)
    np.testing.assert_array_equal(out.values, [1, 0, 0, 0, 1])
    assert out.counts == {"cloud_wins": 2, "edge_wins": 1, "ties": 2, "epsilon_hits": 1}
    soft = labels.tau_rule(se_edge, se_cloud, tau=0.1, ties="soft").values
    np.testing.assert_array_equal(soft, [1, 0, 0.5, 0.5, 1])
    dropped = labels.tau_rule(se_edge, se_cloud, tau=0.1, ties="drop")
    assert np.isnan(dropped.values).sum() == 2 and dropped.kept.sum() == 3
    # a larger tau keeps the relative gap of 1.0 a win but turns the gap of 0.5 into a tie
    np.testing.assert_array_equal(labels.tau_rule(se_edge, se_cloud, tau=0.6, ties="soft").values,
                                  [1, 0.5, 0.5, 0.5, 1])


def test_edge_se_rule_threshold_and_quantile() -> None:
    se = np.array([0.0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_array_equal(labels.edge_se_rule(se, threshold=0.5).values, [0, 0, 0, 1, 1])
    out = labels.edge_se_rule(se, quantile=0.5)
    assert out.params["threshold"] == pytest.approx(0.4)
    np.testing.assert_array_equal(out.values, [0, 0, 0, 1, 1])


def test_judge_rule_margin_and_ties() -> None:
    edge, cloud = np.array([1, 0, 1, 0, 7.0]), np.array([1, 1, 0, 0, 9.0])
    np.testing.assert_array_equal(labels.judge_rule(edge, cloud).values, [0, 1, 0, 0, 1])
    out = labels.judge_rule(edge, cloud, margin=1.5, ties="soft")
    np.testing.assert_array_equal(out.values, [0.5, 0.5, 0.5, 0.5, 1])
    assert out.counts == {"cloud_better": 1, "edge_better": 0, "ties": 4}


def test_combined_rule_averages_and_propagates_drops() -> None:
    judge = labels.judge_rule(np.array([0, 0, 1.0]), np.array([1, 0, 1.0]), ties="drop")
    se = labels.edge_se_rule(np.array([0.9, 0.1, 0.9]), threshold=0.5)
    out = labels.combined_rule(judge, se, judge_weight=0.25)
    assert out.values[0] == 1.0 and np.isnan(out.values[1]) and np.isnan(out.values[2])
    both = labels.combined_rule(labels.judge_rule(np.array([0.0]), np.array([1.0])),
                                labels.edge_se_rule(np.array([0.1]), threshold=0.5), 0.25)
    assert both.values[0] == pytest.approx(0.25)


def test_non_finite_evidence_names_the_column_and_row() -> None:
    with pytest.raises(DataError, match="se_cloud.*first at row 1"):
        labels.tau_rule(np.array([1.0, 1.0]), np.array([1.0, np.nan]))


def test_edge_wrong_rule_labels_the_wrong_greedy_answers() -> None:
    from confroute.dataset.labels import edge_wrong_rule

    labels = edge_wrong_rule(np.array([1.0, 0.0, 0.0, 1.0]))
    assert labels.values.tolist() == [0.0, 1.0, 1.0, 0.0] and labels.rule == "edge_wrong"
    assert labels.counts == {"cloud": 2, "edge": 2}
    with pytest.raises(DataError, match="correct_edge"):
        edge_wrong_rule(np.array([1.0, 0.5]))


def test_auto_rule_follows_the_label_study() -> None:
    """auto: judge with both ratings, tau with both SEs, edge_wrong with gold, else edge_se."""
    import pandas as pd

    from confroute.config import LabelConfig
    from confroute.dataset.schema import from_scores

    base = {"prompt": ["a", "b", "c", "d"], "se_edge": [0.1, 0.9, 0.5, 0.2]}
    gold = pd.DataFrame({**base, "correct_edge": [1.0, 0.0, 0.0, 1.0]})
    assert from_scores(gold, LabelConfig())[1].rule == "edge_wrong"
    partial = gold.assign(correct_edge=[1.0, None, 0.0, 1.0])
    assert from_scores(partial, LabelConfig())[1].rule == "edge_se"  # gold on some rows only
    both = gold.assign(se_cloud=[0.2, 0.1, 0.4, 0.3])
    assert from_scores(both, LabelConfig())[1].rule == "tau"
    assert from_scores(gold, LabelConfig(rule="edge_se"))[1].rule == "edge_se"
