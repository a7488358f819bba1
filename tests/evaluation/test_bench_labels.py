"""bench/labels.py (the label study) end to end on a small slice of the bundled smollm2-uncertainty
table and the real MMLU-Pro outcomes, with the tiny random encoder so that it takes seconds; and
the statistics it rests on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from confroute.stats import binary_auroc

ROOT = Path(__file__).resolve().parents[2]
MMLU_PRO = ROOT.parent / "shared/data/mmlu_pro"
sys.path.insert(0, str(ROOT / "bench"))
import labels_lib as lib  # noqa: E402


def test_auroc_matches_confroute_stats_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + y * 0.3, 1)  # many ties
    assert lib.auroc(y, s) == pytest.approx(binary_auroc(y, s), abs=1e-12)
    assert np.isnan(lib.auroc(np.ones(5, bool), s[:5]))


def test_a_score_that_only_knows_the_group_is_chance_within_groups():
    groups = np.array(["a"] * 50 + ["b"] * 50)
    y = np.r_[np.arange(50) < 40, np.arange(50) < 10]  # a: 80% positive, b: 20%
    prior = lib.group_prior(groups, y.astype(float), groups)
    assert lib.auroc(y, prior) > 0.75
    assert lib.within(y, prior, groups) == pytest.approx(0.5)


def test_router_learns_a_soft_label_and_reports_one_class_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    soft = 1 / (1 + np.exp(-2 * x[:, 0]))
    scores = lib.fit_score(x[:150], soft[:150], x[150:], seed=0)
    assert lib.auroc(soft[150:] > 0.5, scores) > 0.9
    with pytest.raises(Exception, match="single class"):
        lib.fit_score(x[:50], np.ones(50), x[50:], seed=0)


def test_paired_bootstrap_ci_brackets_the_value():
    values = np.arange(100, dtype=float)
    out = lib.with_ci(lambda i: {"mean": float(values[i].mean())}, 100, 200, seed=0)
    assert out["mean"]["low"] < out["mean"]["value"] == 49.5 < out["mean"]["high"]


@pytest.mark.skipif(not (MMLU_PRO / "outcomes.parquet").is_file(), reason="MMLU-Pro not present")
def test_label_study_quick_writes_one_table_with_priors_and_within_source_auroc(
        tmp_path, tiny_encoder_dir):
    # a rebuilt table may carry the cloud model's SE: then the tau rule has a row of its own
    table = pd.read_parquet(ROOT / "confroute/dataset/builtin/smollm2_uncertainty.parquet")
    table["se_cloud"] = np.random.default_rng(0).permutation(table["se_edge"].to_numpy())
    data = tmp_path / "table.parquet"
    table.to_parquet(data)
    pair = "Meta-Llama-3.1-8B-Instruct->Meta-Llama-3.1-70B-Instruct"
    command = [sys.executable, str(ROOT / "bench/labels.py"), "--quick", "--data", str(data),
               "--max-rows", "240", "--mmlu-pro-rows", "400", "--bootstrap", "20",
               "--pairs", pair, "--encoder", str(tiny_encoder_dir), "--max-length", "64",
               "--mmlu-pro-dir", str(MMLU_PRO), "--cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out")]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    md = (tmp_path / "out/labels.md").read_text()
    result = json.loads((tmp_path / "out/labels.json").read_text())
    smol = result["smollm2"]
    assert smol["train"] + smol["test"] == 240 and smol["test"] > 20
    names = [r["label"] for r in smol["rows"]]
    assert len(names) == 7 and not any("skipped" in r for r in smol["rows"])
    m = smol["metrics"]
    for name in names:
        for metric in ("auroc", "within", "rho", "delta"):
            cell = m[f"{name}|{metric}"]
            assert cell["low"] <= cell["value"] <= cell["high"] or np.isnan(cell["value"])
        assert m[f"{name} | prior|within"]["value"] == pytest.approx(0.5)
        assert f"| {name} | " in md
    # the bar every delta is measured against, and the pair rows with random and oracle
    assert "| source prior of the outcome (train share wrong per source) |" in md
    (p,) = result["mmlu_pro"]
    assert p["pair"] == pair and p["labels"] == ["edge wrong", "cloud better",
                                                 "soft quality gap"]
    assert p["metrics"]["oracle|apgr"]["value"] > p["metrics"]["cloud better|apgr"]["low"]
    assert "| | random |" in md and "| | oracle |" in md and "wall time" in md
