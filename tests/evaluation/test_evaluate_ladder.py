"""`confroute evaluate-ladder` and `confroute mmlu-pro`: a K-model artifact evaluated on real
outcomes against the prior, random, oracle and every model alone; bad inputs named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_runtime_cli import run_main

from confroute.evaluation import ladder
from confroute.evaluation.ladder_run import LadderEvaluateRequest, evaluate_ladder

from conftest import make_ladder_rows

ROOT = Path(__file__).resolve().parents[2]
MMLU_PRO = ROOT.parent / "shared/data/mmlu_pro"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = make_ladder_rows(150)
    for i, row in enumerate(rows):
        row["split"] = "test" if i % 3 == 0 else "train"
    path = tmp_path_factory.mktemp("ladder_eval") / "ratings.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_report_compares_the_router_with_every_reference(tiny_ladder_artifact: Path,
                                                         table: Path, tmp_path: Path) -> None:
    report = evaluate_ladder(LadderEvaluateRequest(tiny_ladder_artifact, table, tmp_path,
                                                   bootstrap=50))
    assert report["prompts"] == 50 and report["models"] == ["small", "medium", "large"]
    curves = report["curves"]
    assert set(curves) == {"router", "prior", "oracle", "random"}
    assert curves["router"]["area"] > curves["random"]["area"]
    assert curves["oracle"]["cost_at_95"] <= curves["router"]["cost_at_95"]
    # the curve starts at the cheapest model alone and ends at the top model alone
    assert curves["router"]["curve"]["cost"][0] == pytest.approx(report["model_cost"][0])
    assert curves["router"]["curve"]["quality"][-1] == pytest.approx(report["model_quality"][2])
    assert {"low", "high"} <= set(curves["router"]["ci"]["area_minus_reference"])
    assert sum(report["operating_point"]["shares"].values()) == pytest.approx(1)
    for name in ("report.json", "report.md", "curve.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| router |" in (tmp_path / "report.md").read_text()


def test_the_router_is_scored_on_test_rows_only(tiny_ladder_artifact: Path, table: Path,
                                                tmp_path: Path) -> None:
    from confroute.runtime import Router

    report = evaluate_ladder(LadderEvaluateRequest(tiny_ladder_artifact, table, tmp_path,
                                                   bootstrap=0))
    frame = pd.read_parquet(table)
    test = frame[frame["split"] == "test"]
    quality = test[["small", "medium", "large"]].to_numpy()
    costs = Router.load(tiny_ladder_artifact)  # prices and token counts as the artifact has them
    from confroute.dataset.ratings import read_ratings

    rated = read_ratings(table, {m: {"input_per_mtok": p.input_per_mtok,
                                     "output_per_mtok": p.output_per_mtok}
                                 for m, p in zip(costs.models, costs.prices, strict=True)})
    expected = ladder.summary(ladder.curve(
        costs.adequacy(test["prompt"].tolist()), quality,
        rated.costs()[(rated.splits == "test")]))
    assert report["curves"]["router"]["area"] == pytest.approx(expected["area"])
    assert np.isfinite(report["curves"]["router"]["area"])


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["medium"]), "missing column(s) medium"),
    (lambda f: f.assign(split="train"), "no rows in split 'test'"),
    (lambda f: f.assign(split="test"), "needs `train` rows"),
    (lambda f: f.drop(columns=["split"]), "no `split` column"),
    (lambda f: f.assign(small=np.where(np.arange(len(f)) == 4, np.nan, f["small"])),
     "ratings of model 'small' are missing (NaN)"),
])
def test_bad_tables_are_named(tiny_ladder_artifact: Path, table: Path, tmp_path: Path,
                              change, message: str) -> None:
    from confroute.errors import DataError

    bad = tmp_path / "bad.parquet"
    change(pd.read_parquet(table)).to_parquet(bad)
    with pytest.raises(DataError) as error:
        evaluate_ladder(LadderEvaluateRequest(tiny_ladder_artifact, bad, tmp_path / "out"))
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_the_cli_prints_the_figures(tiny_ladder_artifact: Path, tiny_artifact: Path,
                                    table: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(["evaluate-ladder", "--router", str(tiny_ladder_artifact),
                             "--ratings", str(table), "--out", str(tmp_path), "--bootstrap",
                             "20"], capsys, monkeypatch)
    assert code == 0 and "router area" in out and "prior area" in out and "wrote" in out
    code, _, err = run_main(["evaluate-ladder", "--router", str(tiny_artifact), "--ratings",
                             str(table), "--out", str(tmp_path / "two")], capsys, monkeypatch)
    assert code == 2 and "routes between two models" in err


@pytest.mark.skipif(not (MMLU_PRO / "outcomes.parquet").is_file(), reason="MMLU-Pro absent")
def test_mmlu_pro_writes_a_table_that_trains_and_evaluates(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from confroute.config import DataConfig
    from confroute.dataset import schema

    models = "[Llama-2-70b-hf, Llama-2-7b-hf, Llama-2-13b-hf]"
    code, out, _ = run_main(["mmlu-pro", "--dir", str(MMLU_PRO), "--models", models,
                             "--prices", str(ROOT / "examples/mmlu_pro_prices.yaml"),
                             "--out", str(tmp_path), "--routellm_mmlu"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and result["models"] == ["Llama-2-7b-hf", "Llama-2-13b-hf",
                                              "Llama-2-70b-hf"]
    frame = pd.read_parquet(tmp_path / "ratings.parquet")
    derived = frame["src"].str.startswith("ori_mmlu")
    assert (frame.loc[derived, "split"] == "test").all()  # no MMLU question in train or val
    data = schema.load(DataConfig(source=str(tmp_path / "ratings.parquet"),
                                  models=result["models"],
                                  prices=str(tmp_path / "prices.yaml")))
    assert data.report["rows"]["train"] == result["splits"]["train"]
    code, _, err = run_main(["mmlu-pro", "--dir", str(MMLU_PRO), "--models", "[Llama-2-7b-hf]",
                             "--prices", str(ROOT / "examples/mmlu_pro_prices.yaml"), "--out",
                             str(tmp_path / "one")], capsys, monkeypatch)
    assert code == 2 and "at least 2 models" in err
