"""bench/quality.py end to end on a small slice of the real RouteLLM outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUTELLM = ROOT.parent / "shared/data/routellm"


@pytest.mark.slow
@pytest.mark.skipif(not (ROUTELLM / "evals").is_dir(), reason="RouteLLM outcomes not present")
def test_quality_bench_writes_the_table_json_scores_and_folds(tmp_path):
    command = [sys.executable, str(ROOT / "bench/quality.py"), "--routers", "random,prior,knn,sw",
               "--max-rows", "60", "--folds", "2", "--bootstrap", "10", "--random-seeds", "2",
               "--routellm-dir", str(ROUTELLM), "--cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out")]
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    out = tmp_path / "out"
    table = (out / "quality.md").read_text()
    assert "--max-rows 60" in table and "fine-tuned router not run" in table
    data = json.loads((out / "quality.json").read_text())
    cells = {(r["protocol"], r["benchmark"]) for r in data["rows"]}
    assert cells == {("cv2", "mt-bench"), ("cv2", "gsm8k"), ("cv2", "mmlu"),
                     ("transfer from mmlu+gsm8k", "mt-bench"), ("transfer from gsm8k", "mmlu"),
                     ("transfer from mmlu", "gsm8k")}
    routers = {r["router"] for r in data["rows"]}
    assert routers == {"random", "prior", "knn", "sw", "oracle"}
    assert all(r["minus_prior"] is not None for r in data["rows"] if r["router"] in ("knn", "sw"))
    assert "APGR - prior" in table
    assert len(data["folds"]["gsm8k"]["fold_of_row"]) == 60
    for row in data["rows"]:
        line = f"| {row['protocol']} | {row['benchmark']} | {row['router']} |"
        assert line in table
    assert (out / "scores" / "cv2-gsm8k.csv.gz").is_file()
    assert (out / "plots" / "transfer-from-gsm8k-mmlu.png").is_file()
