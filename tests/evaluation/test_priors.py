"""Group priors: smoothing, no leakage across folds, groups of each ground truth, the paired gap,
training's validation prior, and the prior row of `confroute evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from confroute.cli import main
from confroute.errors import DataError
from confroute.evaluation import metrics, priors, protocols
from confroute.evaluation.groundtruth import GroundTruth, load_truth


def _truth(n=200, seed=0):
    """Five groups whose cloud-needed rate differs; inside a group, outcomes are coin flips."""
    rng = np.random.default_rng(seed)
    groups = np.array([f"g{i % 5}" for i in range(n)])
    need = rng.random(n) < np.array([0.1, 0.3, 0.5, 0.7, 0.9])[np.arange(n) % 5]
    edge = (~need).astype(float)
    return GroundTruth("toy", [f"p{i}" for i in range(n)], [f"q{i}" for i in range(n)], edge,
                       np.ones(n), groups=groups)


def test_cv_prior_never_sees_the_label_it_scores():
    truth = _truth()
    _, groups = priors.truth_groups(truth)
    scores = priors.cv_scores(truth, groups, folds=5, seed=0)
    fold = protocols.kfold_assignment(len(truth), 5, 0)
    # flip one row's outcome: its own score must not move; rows of its group in other folds must
    flipped = truth.subset(np.arange(len(truth)))
    flipped.quality_edge = truth.quality_edge.copy()
    flipped.quality_edge[0] = 1 - flipped.quality_edge[0]
    again = priors.cv_scores(flipped, groups, folds=5, seed=0)
    assert again[0] == scores[0]
    other = (groups == groups[0]) & (fold != fold[0])
    assert not np.allclose(again[other], scores[other])
    # the prior knows the groups' rates, so it beats random but cannot rank inside a group
    apgr = metrics.apgr(metrics.sweep(scores, truth.quality_edge, truth.quality_cloud))
    assert apgr > 0.6
    for g in np.unique(groups):
        rows = groups == g
        assert len(set(scores[rows & (fold == 0)])) == 1


def test_transfer_to_unseen_groups_is_a_constant_and_so_random_routing():
    truth = _truth()
    fold = protocols.Fold("t", protocols.part(truth, None, np.arange(100)),
                          protocols.part(truth, None, np.arange(100, 200)),
                          np.arange(100, 200))
    scores = priors.recipe({pid: "seen" if i < 100 else "new"
                            for i, pid in enumerate(truth.ids)})(fold)
    assert np.all(scores == 0)  # the training base rate, relative to itself


def test_a_one_group_prior_is_random_routing_in_pooled_cv():
    for n in (200, 1307):
        truth = _truth(n, seed=n)
        scores = priors.cv_scores(truth, np.full(len(truth), "all"), folds=5)
        assert np.all(scores == 0)
        apgr = metrics.apgr(metrics.sweep(scores, truth.quality_edge, truth.quality_cloud))
        assert apgr == pytest.approx(0.5)


def test_groups_of_each_ground_truth(tmp_path):
    mmlu = GroundTruth("mmlu", ["mmlu/anatomy/0", "mmlu/law/3"], ["a", "b"], np.zeros(2),
                       np.ones(2))
    assert priors.truth_groups(mmlu)[0] == "subject"
    assert list(priors.truth_groups(mmlu)[1]) == ["anatomy", "law"]
    folder = tmp_path / "evals" / "mt_bench"
    folder.mkdir(parents=True)
    (folder / "question.jsonl").write_text(
        '{"question_id": 81, "category": "writing"}\n{"question_id": 111, "category": "math"}\n')
    mt = GroundTruth("mt-bench", ["mt_bench/111", "mt_bench/81"], ["a", "b"], np.zeros(2),
                     np.ones(2))
    kind, groups = priors.truth_groups(mt, tmp_path)
    assert kind == "category" and list(groups) == ["math", "writing"]
    unknown = GroundTruth("mt-bench", ["mt_bench/999"], ["a"], np.zeros(1), np.ones(1))
    with pytest.raises(DataError, match="no category"):
        priors.truth_groups(unknown, tmp_path)
    (folder / "question.jsonl").write_text('{"question_id": 81}\n')
    with pytest.raises(DataError, match="question.jsonl:1"):
        priors.truth_groups(mt, tmp_path)
    plain = GroundTruth("x", ["a"], ["a"], np.zeros(1), np.ones(1))
    assert priors.truth_groups(plain)[0] == "global"


def test_gap_is_the_apgr_difference_with_a_paired_ci():
    truth = _truth()
    qe, qc = truth.quality_edge, truth.quality_cloud
    _, groups = priors.truth_groups(truth)
    prior = priors.cv_scores(truth, groups)
    router = prior + 0.5 * (qc - qe)  # the prior plus knowledge of the outcome: better
    out = priors.gap(router, prior, qe, qc, samples=200)
    expected = (metrics.apgr(metrics.sweep(router, qe, qc))
                - metrics.apgr(metrics.sweep(prior, qe, qc)))
    assert out["gap"] == pytest.approx(expected)
    assert 0 < out["low"] <= out["gap"] <= out["high"]
    same = priors.gap(prior, prior, qe, qc, samples=50)
    assert same["gap"] == same["low"] == same["high"] == 0



def test_evaluate_reports_the_prior_beside_the_router(tmp_path, capsys):
    truth = _truth(300, seed=1)
    path = tmp_path / "rated.csv"
    pd.DataFrame({"id": truth.ids, "prompt": truth.prompts, "rating_edge": truth.quality_edge,
                  "rating_cloud": truth.quality_cloud, "source": truth.groups}).to_csv(
        path, index=False)
    loaded = load_truth(str(path))
    scores = np.random.default_rng(3).random(300)  # a router no better than chance
    pd.DataFrame({"id": loaded.ids, "score": scores}).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    assert main(["evaluate", "--scores", str(tmp_path / "s.csv"), "--truth", str(path),
                 "--out", str(out), "--bootstrap", "50"]) == 0
    report = json.loads((out / "report.json").read_text())
    prior = report["references"]["prior"]
    assert prior["name"] == "prior (source, 5-fold CV)"
    expected = priors.cv_scores(loaded, loaded.groups, 5, 0)
    assert prior["metrics"]["apgr"] == pytest.approx(
        metrics.apgr(metrics.sweep(expected, loaded.quality_edge, loaded.quality_cloud)))
    assert prior["router_minus_prior_apgr"]["gap"] < 0  # chance loses to knowing the source
    assert "| prior (source, 5-fold CV) |" in (out / "report.md").read_text()
    assert "prior (source, 5-fold CV): APGR" in capsys.readouterr().out
    argv = ["evaluate", "--scores", str(tmp_path / "s.csv"), "--truth", str(path), "--out",
            str(out), "--prior_folds", "0", "--bootstrap", "0"]
    assert main(argv) == 0
    assert "prior" not in json.loads((out / "report.json").read_text())["references"]


def test_training_reports_the_source_prior_on_the_same_rows(tiny_run_dir):
    """fit() writes the prior fitted on its training split, scored on its validation split."""
    result = json.loads((tiny_run_dir / "metrics.json").read_text())
    prior = result["val_prior"]
    assert prior["group_column"] == "source" and prior["groups"] == 1  # the toy data: one source
    assert prior["val_auroc"] is None or prior["val_auroc"] == 0.5
