"""The evaluate pipeline: score alignment, report contents, files, and the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from confroute.cli import evaluate as cli
from confroute.errors import ConfigError, DataError
from confroute.evaluation import metrics
from confroute.evaluation import report as reporting
from confroute.evaluation.groundtruth import GroundTruth, load_truth


@pytest.fixture()
def rated(tmp_path):
    """60 rated prompts; the cloud is better on the first 20."""
    rng = np.random.default_rng(0)
    edge = rng.integers(3, 9, 60).astype(float)
    cloud = edge.copy()
    cloud[:20] += 2
    cloud[20:30] -= 1
    path = tmp_path / "rated.csv"
    pd.DataFrame({"id": [f"p{i}" for i in range(60)], "prompt": [f"prompt {i}" for i in range(60)],
                  "rating_edge": edge, "rating_cloud": cloud}).to_csv(path, index=False)
    return path


def _parse(argv):
    from confroute.cli import build_parser

    parser = build_parser("evaluate")
    return parser.instantiate(parser.parse_args(argv))


def test_cli_writes_report_markdown_plot_and_scores(rated, tmp_path, capsys):
    truth = load_truth(str(rated))
    scores = np.linspace(1, 0, 60) + np.random.default_rng(1).normal(0, 0.3, 60)
    order = np.random.default_rng(2).permutation(60)  # file order differs from the truth's
    pd.DataFrame({"id": truth.ids[order], "score": scores[order]}).to_csv(
        tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    args = _parse(["--scores", str(tmp_path / "s.csv"), "--truth", str(rated), "--out", str(out),
                   "--bootstrap", "50", "--save_scores", str(tmp_path / "used.csv")])
    assert cli.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    expected = metrics.summary(metrics.sweep(scores, truth.quality_edge, truth.quality_cloud))
    assert report["metrics"] == pytest.approx(expected)
    assert report["references"]["random"]["apgr"] == 0.5
    assert report["ci"]["apgr"]["low"] <= report["metrics"]["apgr"] <= report["ci"]["apgr"]["high"]
    assert set(report["operating_points"]) == {"cpt_20", "cpt_50", "cpt_80"}
    assert report["cost_usd"]["all_cloud"] > report["cost_usd"]["all_edge"]
    assert "| " + str(rated) in (out / "report.md").read_text()
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    used = pd.read_csv(tmp_path / "used.csv")
    assert list(used["id"]) == list(truth.ids)
    np.testing.assert_allclose(used["score"], scores)
    assert "APGR" in capsys.readouterr().out


def test_oracle_and_constant_scores_give_the_reference_figures(rated):
    truth = load_truth(str(rated))
    oracle = reporting.evaluate(metrics.oracle_scores(truth.quality_edge, truth.quality_cloud),
                                truth, "oracle", bootstrap=0)
    assert oracle["metrics"] == pytest.approx(oracle["references"]["oracle"])
    flat = reporting.evaluate(np.zeros(len(truth)), truth, "flat", bootstrap=0)
    assert flat["metrics"] == pytest.approx(flat["references"]["random"])


@pytest.mark.parametrize(("ids", "scores", "message"), [
    (["a", "b"], [0.1, 0.2], "1 prompt\\(s\\) without a score"),
    (["a", "b", "c", "zz"], [0.1, 0.2, 0.3, 0.4], "1 unknown id"),
    (["a", "b", "b"], [0.1, 0.2, 0.3], "repeat prompt id"),
    (["a", "b", "c"], [0.1, np.nan, 0.3], "NaN"),
    (["a", "b", "c"], [0.1, 0.2], "3 ids but 2 scores"),
])
def test_scores_that_do_not_match_the_ground_truth_are_errors(ids, scores, message):
    truth = GroundTruth("t", np.array(["a", "b", "c"]), ["x", "y", "z"], np.zeros(3), np.ones(3))
    with pytest.raises(DataError, match=message):
        reporting.align_scores(truth, ids, scores)


def test_cli_rejects_bad_scores_files(rated, tmp_path):
    pd.DataFrame({"id": ["p0"], "value": [0.3]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="needs columns id and score"):
        args = _parse(["--scores", str(tmp_path / "s.csv"), "--truth", str(rated)])
        cli.run(args)
    with pytest.raises(DataError, match="does not exist"):
        args = _parse(["--scores", str(tmp_path / "nope.csv"), "--truth", str(rated)])
        cli.run(args)
    (tmp_path / "cost.yaml").write_text("cloud_input_per_mtok: -1\n")
    pd.DataFrame({"id": ["p0"], "score": [0.3]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(ConfigError, match="cloud_input_per_mtok"):
        args = _parse(["--scores", str(tmp_path / "s.csv"), "--truth", str(rated),
                       "--cost", str(tmp_path / "cost.yaml")])
        cli.run(args)


def test_json_report_is_strict_json(tmp_path):
    path = reporting.write_json({"a": float("nan"), "b": [1.0, float("inf")]}, tmp_path / "r.json")
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None]}


def test_markdown_table_by_hand():
    row = {"ground_truth": "gsm8k", "router": "knn", "prompts": 10,
           "metrics": {"apgr": 0.61234, "cpt_50": 0.4, "cpt_80": float("nan")},
           "ci": {"apgr": {"low": 0.5, "high": 0.7}}}
    table = reporting.markdown([row])
    assert "| gsm8k | knn | 0.612 [0.500, 0.700] | 40.0% | never | 10 |" in table


def test_console_script_turns_bad_input_into_one_line_and_exit_2(rated, tmp_path, capsys):
    from confroute.cli import main

    assert main(["evaluate", "--scores", str(tmp_path / "none.csv"), "--truth", str(rated)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("confroute evaluate: error:") and "does not exist" in err
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--save_scores" in capsys.readouterr().out


def test_pooled_sources_are_also_reported_one_by_one(tmp_path):
    path = tmp_path / "pooled.csv"
    pd.DataFrame({"prompt": [f"p{i}" for i in range(8)], "source": ["a"] * 4 + ["b"] * 4,
                  "rating_edge": [0, 0, 1, 1, 2, 2, 9, 9],
                  "rating_cloud": [1, 0, 1, 1, 9, 2, 9, 9]}).to_csv(path, index=False)
    truth = load_truth(str(path))
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.1, 0.9, 0.5, 0.6])
    report = reporting.evaluate(scores, truth, "r", bootstrap=0)
    a = report["by_source"]["a"]
    assert a["prompts"] == 4
    assert a["metrics"] == pytest.approx(metrics.summary(metrics.sweep(
        scores[:4], truth.quality_edge[:4], truth.quality_cloud[:4])))
    assert "| pooled.csv" not in reporting.markdown([report])
    assert f"| {path} / b | r |" in reporting.markdown([report])
