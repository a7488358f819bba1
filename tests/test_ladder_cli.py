"""`confroute route`, `calibrate` and `export` go through one code path for any K: the chosen
model and why, per-request overrides, calibration to shares or a cost (written atomically),
flags of the other rule refused with one line; each for a pair and for three models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_runtime_cli import run_main

from conftest import LADDER, PAIR_PRICES, make_ladder_rows

PAIR = ["edge", "cloud"]
PRICED = list(PAIR_PRICES)


@pytest.fixture(params=["pair", "ladder"])
def artifact(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the tiny pair or of the three-model ladder (threshold rule), and its models."""
    source, models = ((request.getfixturevalue("tiny_artifact"), PAIR)
                      if request.param == "pair" else
                      (request.getfixturevalue("tiny_ladder_artifact"), LADDER))
    return Path(shutil.copytree(source, tmp_path / "artifact")), models


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(r["prompt"] + "\n" for r in make_ladder_rows(120)))
    return path


def test_route_prints_the_model_and_why(artifact: tuple[Path, list[str]],
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    art, models = artifact
    code, out, _ = run_main(["route", str(art), "What is 4 plus 9?",
                             "Prove the inequality for all n > 3 using induction on 7."],
                            capsys, monkeypatch)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [d["index"] for d in lines] == [0, 1]
    for decision in lines:
        assert decision["model"] in models and decision["reason"]
        assert list(decision["probabilities"]) == list(decision["thresholds"]) == models
        assert ("score" in decision) == (len(models) == 2)
    code, out, _ = run_main(["route", str(art), "hi", "--thresholds", f"{{{models[0]}: 0.0}}"],
                            capsys, monkeypatch)
    assert json.loads(out)["model"] == models[0]
    code, out, _ = run_main(["route", str(art), "hi", "--model", models[-1]], capsys,
                            monkeypatch)
    assert json.loads(out)["reason"] == "forced by the request"
    assert json.loads(out)["model"] == models[-1]


@pytest.mark.parametrize("argv, message", [
    (["route", "ART", "hi", "--threshold", "0.3"], "use --thresholds"),
    (["route", "ART", "hi", "--model", "huge"], "unknown model 'huge'"),
    (["route", "TWO", "hi", "--model", "small"], "unknown model 'small'; models: edge, cloud"),
    (["route", "ART", "hi", "--thresholds", "{small: 2}"],
     "thresholds.small: threshold must be a number in"),
    (["route", "TWO", "hi", "--thresholds", "{edge: 2}"], "thresholds.edge: threshold must be"),
    (["route", "TWO", "hi", "--threshold", "0.3", "--thresholds", "{edge: 0.5}"],
     "give threshold or thresholds.edge, not both"),
    (["route", "ART", "hi", "--thresholds", "{small: x}"], "thresholds"),
    (["route", "ART", "hi", "--lambda_per_usd", "5"], "threshold rule: override thresholds"),
    (["route", "TWO", "hi", "--lambda_per_usd", "5"], "threshold rule: override thresholds"),
    (["calibrate", "ART", "--cloud_fraction", "0.3"], "exactly one of --target_cost"),
    (["calibrate", "ART", "--target_cost", "1", "--shares", "[1, 0, 0]"], "exactly one of"),
    (["calibrate", "TWO", "--cloud_fraction", "0.3", "--shares", "[0.7, 0.3]"],
     "give --cloud_fraction F, or one of --shares"),
    (["calibrate", "ART", "--shares", "[0.5, 0.5]"], "shares must be 3 numbers"),
    (["calibrate", "TWO", "--shares", "[0.5, 0.3, 0.2]"], "shares must be 2 numbers"),
    (["calibrate", "ART", "--target_cost", "-1"], "--target_cost must be a number >= 0"),
    (["calibrate", "ART", "--target_cost", "0"], "below the cheapest model's"),
    (["calibrate", "TWO", "--target_cost", "1"], "this artifact has no prices for its models "
                                                 "(edge, cloud)"),
    (["calibrate", "TWO", "--target_cost", "1", "--rule", "utility"], "has no prices"),
])
def test_bad_arguments_are_one_line(tiny_ladder_artifact: Path, tiny_artifact: Path,
                                    argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [a.replace("ART", str(tiny_ladder_artifact)).replace("TWO", str(tiny_artifact))
            for a in argv]
    code, out, err = run_main(argv, capsys, monkeypatch, stdin=b"hi\nthere\n")
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_calibrate_to_shares_writes_what_route_then_does(artifact: tuple[Path, list[str]],
                                                         prompts: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    art, models = artifact
    shares = [0.6, 0.4] if len(models) == 2 else [0.5, 0.3, 0.2]
    code, out, _ = run_main(["calibrate", str(art), "--file", str(prompts), "--shares",
                             json.dumps(shares), "--write"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["written"] and result["rule"] == "threshold"
    assert result["shares"] == dict(zip(models, shares, strict=True))
    manifest = json.loads((art / "router.json").read_text())
    assert manifest["format_version"] == 2 and "threshold" not in manifest
    assert manifest["routing"]["thresholds"] == list(result["thresholds"].values())
    assert manifest["routing"]["source"]["shares"] == result["shares"]
    _, routed, _ = run_main(["route", str(art), "--file", str(prompts)], capsys, monkeypatch)
    chosen = [json.loads(line)["model"] for line in routed.splitlines()]
    assert {m: chosen.count(m) / len(chosen) for m in models} == result["achieved"]["shares"]
    if len(models) == 2:  # the pair's view: its threshold and cloud share, as --cloud_fraction
        assert manifest["routing"]["threshold"] == result["threshold"]
        assert result["achieved_cloud_fraction"] == chosen.count("cloud") / len(chosen)
        code, out, _ = run_main(["calibrate", str(art), "--file", str(prompts),
                                 "--cloud_fraction", "0.4"], capsys, monkeypatch)
        again = json.loads(out)
        assert (again["threshold"], again["achieved"]) == (result["threshold"],
                                                           result["achieved"])


@pytest.mark.parametrize("which", ["priced_pair_artifact", "tiny_ladder_artifact"])
@pytest.mark.parametrize("rule", ["threshold", "utility"])
def test_calibrate_to_a_cost_with_either_rule(which: str, rule: str, tmp_path: Path,
                                              prompts: Path, request: pytest.FixtureRequest,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from confroute.runtime import Router

    art = Path(shutil.copytree(request.getfixturevalue(which), tmp_path / "artifact"))
    models = PRICED if which.startswith("priced") else LADDER
    texts = prompts.read_text().splitlines()
    costs = Router.load(art).costs(texts)
    budget = float(costs[:, 0].mean() + costs[:, 1].mean()) / 2
    code, out, _ = run_main(["calibrate", str(art), "--file", str(prompts), "--rule", rule,
                             "--target_cost", str(budget), "--write"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["rule"] == rule and result["achieved"]["mean_cost"] <= budget
    assert list(result["achieved"]["shares"]) == models
    reloaded = Router.load(art)
    assert reloaded.policy.rule == rule
    manifest = json.loads((art / "router.json").read_text())
    assert manifest["routing"]["source"]["target_cost"] == budget
    if rule == "utility":
        assert reloaded.policy.lambda_per_usd == result["lambda_per_usd"]
        assert "thresholds" not in result
        code, out, _ = run_main(["route", str(art), "hi", "--lambda_per_usd", "1e12"], capsys,
                                monkeypatch)
        decision = json.loads(out)
        assert decision["model"] == models[0] and "lambda" in decision["reason"]
        assert "thresholds" not in decision and "threshold" not in decision
        assert decision["lambda_per_usd"] == 1e12
        code, _, err = run_main(["route", str(art), "hi", "--thresholds",
                                 f"{{{models[0]}: 0.1}}"], capsys, monkeypatch)
        assert code == 2 and "override lambda_per_usd, not thresholds" in err
        code, _, err = run_main(["calibrate", str(art), "--file", str(prompts), "--shares",
                                 json.dumps([0.5] * 2 + [0.0] * (len(models) - 2))],
                                capsys, monkeypatch)
        assert code == 2 and "--shares sets thresholds" in err
    else:
        assert reloaded.policy.thresholds.tolist() == list(result["thresholds"].values())


@pytest.mark.parametrize("which", ["pair", "ladder"])
def test_export_cli_prints_the_routing(which: str, tiny_run_dir: Path, tiny_ladder_run: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run, models = (tiny_run_dir, PAIR) if which == "pair" else (tiny_ladder_run, LADDER)
    code, out, _ = run_main(["export", str(run), "--out", str(tmp_path / "a"), "--int8",
                             "false"], capsys, monkeypatch)
    printed = json.loads(out)
    assert code == 0 and [m["name"] for m in printed["routing"]["models"]] == models
    assert printed["routing"]["heads"] == ("cloud_needed" if which == "pair" else "adequacy")
    assert "threshold" not in printed and printed["parity"]["max_abs_logit_diff"] <= 1e-4
