"""Bad input to the K-model features, as a new user tried it: each is a clear error naming
what is wrong (never a traceback), and a refused call leaves the user's files as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_runtime_cli import run_main

from confroute import calibration
from confroute.artifact import MANIFEST, read_manifest, write_manifest
from confroute.errors import ConfigError, DataError, InputError
from confroute.runtime import Router

from conftest import LADDER_PRICES, make_ladder_rows

PROMPTS = [r["prompt"] for r in make_ladder_rows(20)]


@pytest.mark.parametrize("shares", [[float("nan"), 0.5, 0.5], ["a", 0.5, 0.5],
                                    [float("inf"), 0.5, 0.5], [0.5, 0.5]])
def test_bad_shares_are_named(shares: list) -> None:
    with pytest.raises(ConfigError, match="shares must be 3 numbers >= 0 summing to 1"):
        calibration.calibrate_shares(np.full((4, 3), 0.5), shares)


def test_the_python_api_refuses_wrong_types(ladder_router: Router,
                                            utility_ladder_artifact: Path) -> None:
    with pytest.raises(InputError, match="thresholds must map model names"):
        ladder_router.decide_batch(PROMPTS, thresholds=[0.1, 0.2, 0.3])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="one threshold is for two models"):
        ladder_router.decide_batch(PROMPTS, 0.3)
    utility = Router.load(utility_ladder_artifact)
    assert utility.policy.rule == "utility"
    for bad in ("abc", "5", True, float("nan"), -1.0):
        with pytest.raises(InputError, match="lambda_per_usd must be a number >= 0"):
            utility.decide_batch(PROMPTS, lambda_per_usd=bad)  # type: ignore[arg-type]
    for target in (float("nan"), "0.0001", -1.0, float("inf")):
        for rule in ("utility", "threshold"):
            with pytest.raises(ConfigError, match="target cost must be a number >= 0"):
                utility.calibration(PROMPTS, target_cost=target, rule=rule)  # type: ignore


@pytest.mark.parametrize("content, message", [
    (b"[1, 2", "is not valid YAML"),
    (b"small: {input_per_mtok: \xff}", "is not UTF-8 text"),
])
def test_a_broken_price_file_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    from confroute.dataset.ratings import parse_prices

    path = tmp_path / "prices.yaml"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        parse_prices(path)


def test_a_ladder_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from confroute.labelling.ladder import read_ladder

    path = tmp_path / "ladder.yaml"
    path.write_bytes(b"- name: caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_ladder(path)


def test_a_settings_file_that_is_not_utf8_is_one_line(tiny_ladder_artifact: Path,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.yaml"
    config.write_bytes(b"port: 8001\nhost: caf\xe9\n")
    for argv in (["serve", str(tiny_ladder_artifact), "--config", str(config)],
                 ["evaluate", "--config", str(config)]):
        code, _, err = run_main(argv, capsys, monkeypatch)
        assert code == 2 and "is not UTF-8 text" in err and len(err.splitlines()) == 1


def test_negative_token_counts_are_refused(tmp_path: Path) -> None:
    from confroute.dataset.ratings import read_ratings

    rows = [{**r, "tokens_in": -5 if i == 2 else 10} for i, r in enumerate(make_ladder_rows())]
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="tokens_in must be token counts >= 0; prompt row2"):
        read_ratings(table, LADDER_PRICES)


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    rows = make_ladder_rows(90)
    for i, row in enumerate(rows):
        row["split"] = "test" if i % 3 == 0 else "train"
    path = tmp_path / "ratings.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_evaluate_refuses_out_of_range_ratings_and_a_file_as_out(
        tiny_ladder_artifact: Path, table: Path, tmp_path: Path) -> None:
    from confroute.evaluation.run import EvaluateRequest, evaluate

    frame = pd.read_parquet(table)
    frame.loc[3, "medium"] = 3.0
    frame.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="ratings of model 'medium' must be in \\[0, 1\\]"):
        evaluate(EvaluateRequest(ratings=tmp_path / "bad.parquet", router=tiny_ladder_artifact,
                                 out=tmp_path / "out"))
    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(DataError, match="is a file; give a folder"):
        evaluate(EvaluateRequest(ratings=table, router=tiny_ladder_artifact,
                                 out=tmp_path / "a_file"))
    assert (tmp_path / "a_file").read_text() == "keep me"


def test_evaluate_scores_as_the_run_defined_adequacy(tiny_ladder_artifact: Path,
                                                            table: Path, tmp_path: Path) -> None:
    """A router trained with data.adequate_rating is evaluated on ratings >= it."""
    from confroute.evaluation.run import EvaluateRequest, evaluate

    artifact = Path(shutil.copytree(tiny_ladder_artifact, tmp_path / "artifact"))
    manifest = read_manifest(artifact)
    manifest["label_rule"] = {"rule": "adequacy", "params": {"adequate_rating": 7.0}}
    write_manifest(artifact, manifest)
    frame = pd.read_parquet(table)
    scaled = frame.assign(**{m: 2.0 + 7 * frame[m] for m in ("small", "medium", "large")})
    scaled.to_parquet(tmp_path / "scores.parquet")
    on_scores = evaluate(EvaluateRequest(ratings=tmp_path / "scores.parquet", router=artifact,
                                         out=tmp_path / "a", bootstrap=0))
    on_binary = evaluate(EvaluateRequest(ratings=table, router=tiny_ladder_artifact,
                                         out=tmp_path / "b", bootstrap=0))
    assert on_scores["model_quality"] == on_binary["model_quality"]
    assert on_scores["curves"]["router"]["area"] == on_binary["curves"]["router"]["area"]
    assert json.loads((artifact / MANIFEST).read_text())["label_rule"]["params"] == {
        "adequate_rating": 7.0}


def test_mmlu_pro_refuses_a_file_as_out(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a_file").write_text("keep me")
    code, _, err = run_main(["mmlu-pro", "--models", "[a, b]", "--prices", "p.yaml", "--out",
                             str(tmp_path / "a_file")], capsys, monkeypatch)
    assert code == 2 and "is a file; give a folder" in err
    assert (tmp_path / "a_file").read_text() == "keep me"
