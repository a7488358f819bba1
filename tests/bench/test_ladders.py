"""bench/ladders.py's product-router scorer: the table it trains on never holds a test question,
and the whole bench runs end to end with confroute's own K-head routers (tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from confroute.dataset import mmlu_pro

ROOT = Path(__file__).resolve().parents[2]
MMLU_PRO = ROOT.parent / "shared/data/mmlu_pro"
sys.path.insert(0, str(ROOT / "bench"))


def _table():
    from confroute.dataset.ratings import Price, Ratings

    n = 12
    return Ratings(np.array([f"q{i}" for i in range(n)]), [f"question {i}?" for i in range(n)],
                   ["small", "large"], np.c_[np.arange(n) % 2, np.ones(n)],
                   [Price(0.1, 0.2), Price(1.0, 2.0)], np.full(n, 10.0), np.full(n, 5.0),
                   np.array(["math"] * n), np.array(["train", "val", "test"] * 4))


def test_written_table_holds_train_and_val_only_and_reads_back_as_a_ladder(tmp_path):
    from ladder_confroute import write_table

    from confroute.dataset.ratings import read_ratings

    table = _table()
    source, prices = write_table(table, tmp_path)
    back = read_ratings(source, prices, ["small", "large"])
    assert set(back.ids) == {f"q{i}" for i in range(12) if i % 3 != 2}  # no test question
    assert list(back.splits) == ["train", "val"] * 4
    assert back.models == ["small", "large"]
    assert back.prices[1].output_per_mtok == 2.0
    np.testing.assert_array_equal(back.ratings[:, 0], np.arange(12)[np.arange(12) % 3 != 2] % 2)
    np.testing.assert_array_equal(back.tokens_in, 10.0)


def test_written_table_needs_a_val_split(tmp_path):
    from ladder_confroute import write_table

    table = _table()
    table.splits = np.array(["train", "test"] * 6)
    with pytest.raises(ValueError, match="val"):
        write_table(table, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not (MMLU_PRO / "outcomes.parquet").is_file(),
                    reason="MMLU-Pro files not present")
def test_quick_bench_trains_exports_and_scores_the_product_routers(tmp_path, tiny_encoder_dir):
    """400 questions, 1 epoch, a tiny random encoder (its static table distils in seconds)."""
    command = [sys.executable, str(ROOT / "bench/ladders.py"), "--quick", "--max-rows", "400",
               "--bootstrap", "20", "--random-seeds", "2", "--few-labels", "100",
               "--confroute", "micro,default", "--confroute-encoder", str(tiny_encoder_dir),
               "--mmlu-pro-dir", str(MMLU_PRO), "--cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out"), "--keep-runs", str(tmp_path / "runs")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "ladders.json").read_text())
    products = ("confroute micro", "confroute default")
    for r, policy in ((r, p) for r in data["pairs"] for p in ("threshold", "utility")):
        for name in products:
            res = r[policy][name]
            assert res["ci"]["apgr"]["low"] <= res["apgr"] <= res["ci"]["apgr"]["high"]
            assert res["minus_prior"]["gap"] == pytest.approx(
                res["apgr"] - r[policy]["prior"]["apgr"])
    for r in data["ladders"]:
        for name in products:
            assert "area_minus_reference" in r["utility"][name]["ci"]
    runs = data["confroute"]
    assert [(r["preset"], len(r["models"])) for r in runs] == [
        (p, k) for k in (2, 2, 2, 3, 3) for p in ("micro", "default")]
    assert {r["family"] for r in runs} == {"static", "transformer"}
    assert all(r["epochs"] == 1 and r["val_rows"] > 0 for r in runs)
    # each product router trained on train + val questions only, none of the bench's test ones
    for folder in (tmp_path / "runs").iterdir():
        ids = pd.read_parquet(folder / "ratings.parquet")["id"].to_numpy()
        assert (mmlu_pro.assign_splits(ids, 0, 0.3) != "test").all(), folder
        assert (folder / "artifact" / "router.json").is_file()
    table = (tmp_path / "out" / "ladders.md").read_text()
    assert "| | threshold | confroute micro |" in table
    assert "| micro | Llama-2-7b-hf -> Llama-2-13b-hf -> Llama-2-70b-hf |" in table
