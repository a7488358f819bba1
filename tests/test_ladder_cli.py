"""`confroute route` and `calibrate` with an artifact for K models: the chosen model and why,
per-request overrides, calibration to a cost or to shares (written atomically), clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_runtime_cli import run_main

from conftest import LADDER, make_ladder_rows


def test_route_prints_the_model_and_why(tiny_ladder_artifact: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(["route", str(tiny_ladder_artifact), "What is 4 plus 9?",
                             "Prove the inequality for all n > 3 using induction on 7."],
                            capsys, monkeypatch)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [d["index"] for d in lines] == [0, 1]
    for decision in lines:
        assert decision["model"] in LADDER and decision["reason"]
        assert list(decision["probabilities"]) == LADDER
    code, out, _ = run_main(["route", str(tiny_ladder_artifact), "hi", "--thresholds",
                             "{small: 0.0}"], capsys, monkeypatch)
    assert json.loads(out)["model"] == "small"
    code, out, _ = run_main(["route", str(tiny_ladder_artifact), "hi", "--model", "large"],
                            capsys, monkeypatch)
    assert json.loads(out)["reason"] == "forced by the request"


@pytest.mark.parametrize("argv, message", [
    (["route", "ART", "hi", "--threshold", "0.3"], "use --thresholds"),
    (["route", "ART", "hi", "--model", "huge"], "unknown model 'huge'"),
    (["route", "ART", "hi", "--thresholds", "{small: 2}"], "threshold must be a number in"),
    (["route", "ART", "hi", "--thresholds", "{small: x}"], "thresholds"),
    (["calibrate", "ART", "--cloud_fraction", "0.3"], "exactly one of --target_cost"),
    (["calibrate", "ART", "--target_cost", "1", "--shares", "[1, 0, 0]"], "exactly one of"),
    (["calibrate", "ART", "--shares", "[0.5, 0.5]"], "shares must be 3 numbers"),
    (["calibrate", "ART", "--target_cost", "-1"], "--target_cost must be a number >= 0"),
    (["calibrate", "ART", "--target_cost", "0"], "below the cheapest model's"),
    (["route", "TWO", "hi", "--model", "small"], "routes between two models"),
    (["calibrate", "TWO", "--target_cost", "1"], "give --cloud_fraction"),
])
def test_bad_ladder_arguments_are_one_line(tiny_ladder_artifact: Path, tiny_artifact: Path,
                                           argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [a.replace("ART", str(tiny_ladder_artifact)).replace("TWO", str(tiny_artifact))
            for a in argv]
    code, out, err = run_main(argv, capsys, monkeypatch, stdin=b"hi\nthere\n")
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_calibrate_writes_thresholds_that_meet_the_cost(tiny_ladder_artifact: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from confroute.runtime import Router

    artifact = tmp_path / "artifact"
    shutil.copytree(tiny_ladder_artifact, artifact)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(r["prompt"] + "\n" for r in make_ladder_rows(120)))
    router = Router.load(artifact)
    texts = prompts.read_text().splitlines()
    budget = float(router.costs(texts)[:, 1].mean())
    code, out, err = run_main(["calibrate", str(artifact), "--file", str(prompts),
                               "--target_cost", str(budget), "--write"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["written"] and result["achieved"]["mean_cost"] <= budget
    manifest = json.loads((artifact / "router.json").read_text())
    assert manifest["ladder"]["thresholds"] == list(result["thresholds"].values())
    assert manifest["ladder"]["threshold_source"]["target_cost"] == budget
    reloaded = Router.load(artifact)
    assert reloaded.policy.thresholds.tolist() == list(result["thresholds"].values())
    code, out, _ = run_main(["calibrate", str(artifact), "--file", str(prompts),
                             "--shares", "[0.0, 0.0, 1.0]"], capsys, monkeypatch)
    assert json.loads(out)["achieved"]["shares"]["large"] == 1.0


def test_export_cli_prints_the_ladder(tiny_ladder_run: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(["export", str(tiny_ladder_run), "--out", str(tmp_path / "a"),
                             "--int8", "false"], capsys, monkeypatch)
    printed = json.loads(out)
    assert code == 0 and [m["name"] for m in printed["ladder"]["models"]] == LADDER
    assert "threshold" not in printed and printed["parity"]["max_abs_logit_diff"] <= 1e-4


def test_calibrate_and_route_with_the_utility_rule(tiny_ladder_artifact: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from confroute.runtime import Router

    artifact = tmp_path / "artifact"
    shutil.copytree(tiny_ladder_artifact, artifact)  # exported with the threshold rule
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(r["prompt"] + "\n" for r in make_ladder_rows(120)))
    texts = prompts.read_text().splitlines()
    budget = float(Router.load(artifact).costs(texts)[:, 1].mean())
    code, out, _ = run_main(["calibrate", str(artifact), "--file", str(prompts), "--rule",
                             "utility", "--target_cost", str(budget), "--write"],
                            capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["rule"] == "utility" and result["lambda_per_usd"] >= 0
    assert result["achieved"]["mean_cost"] <= budget
    router = Router.load(artifact)
    assert router.policy.rule == "utility"
    assert router.policy.lambda_per_usd == result["lambda_per_usd"]
    code, out, _ = run_main(["route", str(artifact), "hi", "--lambda_per_usd", "1e12"], capsys,
                            monkeypatch)
    assert json.loads(out)["model"] == "small" and "lambda" in json.loads(out)["reason"]
    code, _, err = run_main(["route", str(artifact), "hi", "--thresholds", "{small: 0.1}"],
                            capsys, monkeypatch)
    assert code == 2 and "override lambda_per_usd, not thresholds" in err
    code, _, err = run_main(["calibrate", str(artifact), "--file", str(prompts), "--shares",
                             "[0.2, 0.3, 0.5]"], capsys, monkeypatch)
    assert code == 2 and "--shares sets thresholds" in err
    code, out, _ = run_main(["calibrate", str(artifact), "--file", str(prompts), "--rule",
                             "threshold", "--shares", "[0.2, 0.3, 0.5]", "--write"], capsys,
                            monkeypatch)
    assert code == 0 and Router.load(artifact).policy.rule == "threshold"
