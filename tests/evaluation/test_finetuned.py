"""The fine-tuned router inside the protocols (fit -> export -> runtime); evaluate --router."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from confroute.cli import evaluate as cli
from confroute.evaluation import finetuned, protocols
from confroute.evaluation.groundtruth import GroundTruth

from conftest import make_rows


def _toy_truth() -> GroundTruth:
    rows = make_rows(64)
    labels = np.array([r["label"] for r in rows])
    return GroundTruth("toy", np.array([r["id"] for r in rows]), [r["prompt"] for r in rows],
                       1.0 - labels, np.ones(len(rows)))


@pytest.mark.slow
def test_finetuned_recipe_cross_validates_through_the_artifact(tiny_encoder_dir, tmp_path,
                                                                monkeypatch):
    truth = _toy_truth()
    settings = finetuned.FineTuneSettings(encoder=str(tiny_encoder_dir), max_train_rows=None,
                                          max_steps=12, batch_size=8, max_length=32,
                                          learning_rate=1e-3, val_fraction=0.2)
    folds, _ = protocols.cv_folds(truth, None, k=2)
    log: dict = {}
    scores = protocols.run(folds, finetuned.recipe(settings, tmp_path / "cache", log), len(truth))
    assert scores.shape == (64,) and ((scores >= 0) & (scores <= 1)).all()
    assert set(log) == {f.name for f in folds}
    first = log[folds[0].name]
    assert first["train_rows"] + first["val_rows"] == 32
    assert first["variant"] in ("fp32", "int8")
    # the learned scores separate the hard (cloud) prompts from the easy ones out of fold
    labels = truth.labels()
    assert scores[labels == 1].mean() > scores[labels == 0].mean()

    def no_training(*args, **kwargs):
        raise AssertionError("cached folds must not be retrained")

    monkeypatch.setattr("confroute.training.fit.fit", no_training)
    again = protocols.run(folds, finetuned.recipe(settings, tmp_path / "cache"), len(truth))
    np.testing.assert_array_equal(again, scores)


def test_evaluate_cli_scores_with_a_router_artifact(tiny_artifact, tmp_path):
    truth = _toy_truth()
    path = tmp_path / "rated.csv"
    pd.DataFrame({"id": truth.ids, "prompt": truth.prompts, "rating_edge": truth.quality_edge,
                  "rating_cloud": truth.quality_cloud}).to_csv(path, index=False)
    from confroute.cli import build_parser

    parser = build_parser("evaluate")

    def parse(argv):
        return parser.instantiate(parser.parse_args(argv))
    args = parse(["--router", str(tiny_artifact), "--truth", str(path),
                              "--out", str(tmp_path / "out"), "--bootstrap", "20",
                              "--save_scores", str(tmp_path / "scores.jsonl")])
    assert cli.run(args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["router"] == tiny_artifact.name and report["prompts"] == 64
    saved = pd.read_json(tmp_path / "scores.jsonl", lines=True)
    from confroute.runtime import Router

    expected = Router.load(tiny_artifact).score(truth.prompts)
    np.testing.assert_allclose(saved["score"], expected, rtol=1e-6)
    # the saved scores reproduce the report when fed back as a scores file
    args = parse(["--scores", str(tmp_path / "scores.jsonl"),
                              "--truth", str(path), "--out", str(tmp_path / "again"),
                              "--bootstrap", "0"])
    assert cli.run(args) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["metrics"] == pytest.approx(report["metrics"])
    # a quick look: a seeded sample, reported as such
    args = parse(["--router", str(tiny_artifact), "--truth", str(path),
                              "--out", str(tmp_path / "sample"), "--bootstrap", "0",
                              "--sample", "20"])
    assert cli.run(args) == 0
    sampled = json.loads((tmp_path / "sample" / "report.json").read_text())
    assert sampled["prompts"] == 20 and sampled["ground_truth_info"]["subset_of"] == 64
    assert "20 of 64 (sample)" in (tmp_path / "sample" / "report.md").read_text()


def test_prompts_the_router_was_trained_on_are_flagged(tiny_artifact, tmp_path):
    import shutil

    from confroute.evaluation.run import training_overlap

    artifact = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, artifact)
    truth = _toy_truth()
    data = tmp_path / "train.csv"
    pd.DataFrame({"id": truth.ids, "prompt": truth.prompts, "label": truth.labels(),
                  "split": ["train"] * 10 + ["val"] * 5 + ["test"] * 49}).to_csv(data, index=False)
    manifest = json.loads((artifact / "router.json").read_text())
    manifest["training_data"]["source"] = str(data)
    (artifact / "router.json").write_text(json.dumps(manifest))
    warnings = training_overlap(artifact, truth.ids)
    assert len(warnings) == 1 and warnings[0].startswith("15 of the 64 evaluated prompts")
    assert training_overlap(artifact, truth.ids[15:]) == []
