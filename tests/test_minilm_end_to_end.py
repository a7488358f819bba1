"""The real default encoder end to end: train a few steps -> export -> runtime -> route."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def last_json(stdout: str) -> dict:
    """The command's JSON result: Lightning prints its model summary to stdout before it."""
    start = stdout.rindex("\n{\n") + 1 if not stdout.startswith("{") else 0
    return json.loads(stdout[start:])


@pytest.mark.slow
def test_minilm_train_export_route(tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "confroute", *args], capture_output=True,
                             text=True, timeout=900, env={"HF_HUB_OFFLINE": "1",
                                                          **__import__("os").environ})
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    # A slice of the bundled dataset keeps validation and the export checks short.
    from confroute.dataset.builtin import builtin_path

    frame = pd.read_parquet(builtin_path("routellm-judge"))
    small = pd.concat([frame[frame["split"] == "train"].head(160),
                       frame[frame["split"] == "val"].head(64)])
    small.to_parquet(tmp_path / "small.parquet")
    run, art = tmp_path / "run", tmp_path / "artifact"
    trained = last_json(cli("train", "--out", str(run),
                            "--data.source", str(tmp_path / "small.parquet"),
                            "--train.max_steps", "8", "--train.batch_size", "16",
                            "--model.max_length", "64",
                            "--train.trainer.enable_progress_bar", "false"))
    assert trained["global_steps"] == 8 and 0.0 <= trained["val_auroc"] <= 1.0
    exported = last_json(cli("export", str(run), "--out", str(art)))
    assert exported["parity"]["max_abs_logit_diff"] <= 1e-4
    assert abs(exported["int8"]["auroc_change"]) <= 0.05
    manifest = json.loads((art / "router.json").read_text())
    assert manifest["base_encoder"]["model_type"] == "bert"
    assert manifest["base_encoder"]["hidden_size"] == 384
    routed = [json.loads(x) for x in cli("route", str(art), "What is 2+2?", "Prove P != NP.")
              .splitlines()]
    assert [r["index"] for r in routed] == [0, 1]
    assert {r["route"] for r in routed} <= {"edge", "cloud"}
