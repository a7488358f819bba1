"""bench/edge_probe.py end to end: a tiny random causal LM as the edge model, on a slice of the
bundled smollm2-uncertainty rows (the family runs; no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "confroute/dataset/builtin/smollm2_uncertainty.parquet"


@pytest.mark.slow
def test_edge_probe_table_has_every_row_with_cis(tmp_path, tiny_lm):
    frame = pd.read_parquet(DATA)
    rows = pd.concat([g.head(20) for _, g in frame.groupby("source")])  # every source, both classes
    rows.to_parquet(tmp_path / "slice.parquet")
    out = tmp_path / "probe.json"
    command = [sys.executable, str(ROOT / "bench/edge_probe.py"), "--data",
               str(tmp_path / "slice.parquet"), "--edge-model", str(tiny_lm), "--layers", "0,1,2",
               "--folds", "2", "--bootstrap", "20", "--no-static", "--cache-dir",
               str(tmp_path / "cache"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = json.loads(out.read_text())
    names = [r["encoder"] for r in table["rows"]]
    assert names[:3] == ["edge-k0 (input embeddings)", "edge-k>0 (layer chosen on val)",
                         "minilm (frozen, mean)"] and names[-1] == "prior"
    for row in table["rows"]:
        for control in ("within_vs_minilm", "within_vs_edge-k0", "pooled_vs_minilm"):
            assert row[control]["low"] <= row[control]["high"]
    assert {(t["train"], t["test"]) for t in table["format_transfer"]} == {
        ("chat", "chat"), ("chat", "bare"), ("bare", "bare")}
    assert "| edge-k>0 (layer chosen on val) |" in done.stdout
