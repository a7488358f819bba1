"""bench/ladders.py end to end on a slice of the real MMLU-Pro outcomes (TF-IDF features)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MMLU_PRO = ROOT.parent / "shared/data/mmlu_pro"


@pytest.mark.slow
@pytest.mark.skipif(not (MMLU_PRO / "outcomes.parquet").is_file(),
                    reason="MMLU-Pro files not present")
def test_ladders_bench_writes_pairs_ladders_transfer_and_plots(tmp_path):
    command = [sys.executable, str(ROOT / "bench/ladders.py"), "--quick", "--max-rows", "1500",
               "--bootstrap", "20", "--random-seeds", "2", "--few-labels", "200",
               "--mmlu-pro-dir", str(MMLU_PRO), "--cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out")]
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    out = tmp_path / "out"
    data = json.loads((out / "ladders.json").read_text())
    assert [r["pair"][0] for r in data["pairs"]] == [
        "Meta-Llama-3.1-8B-Instruct", "Phi-3-mini-4k-instruct", "Mistral-7B-Instruct-v0.2"]
    for r, policy in ((r, p) for r in data["pairs"] for p in ("threshold", "utility")):
        for router in ("heads", "irt"):
            res = r[policy][router]
            assert 0 < res["apgr"] < r["oracle"]["apgr"]
            assert res["ci"]["apgr"]["low"] <= res["apgr"] <= res["ci"]["apgr"]["high"]
            assert res["minus_prior"]["gap"] == pytest.approx(
                res["apgr"] - r[policy]["prior"]["apgr"])
    llama2 = data["ladders"][0]
    assert llama2["ladder"] == ["Llama-2-7b-hf", "Llama-2-13b-hf", "Llama-2-70b-hf"]
    assert llama2["cost_share_of_best"][-1] == 1
    for policy in ("threshold", "utility"):
        res = llama2[policy]
        assert res["oracle"]["area"] > max(res["heads"]["area"], res["irt"]["area"])
        assert res["oracle"]["cost_at_95"] < 1
        assert "area_minus_reference" in res["irt"]["ci"]
    for r in data["transfer"]:
        assert r["pair"][0] not in r["trained_on"] and r["pair"][1] not in r["trained_on"]
        assert len(r["trained_on"]) == 21  # every other model in the outcome file
        assert set(r["threshold"]["apgr"]) == {"pair-specific", "names only", "200 labels",
                                               "pair-specific on 200 labels"}
    table = (out / "ladders.md").read_text()
    assert "--max-rows 1500" in table and "Llama-2-70b-hf: $0.90 / $0.90" in table
    assert "| Llama-2-7b-hf -> Llama-2-13b-hf -> Llama-2-70b-hf (" in table
    assert "| | utility | irt |" in table
    assert (out / "plots" / "ladder-llama-2-7b-hf.png").read_bytes()[:4] == b"\x89PNG"
