"""`confroute evaluate` over K >= 2 models, one code path: a pair's truth (K = 2), a priced pair
on a ratings table (K = 2) and a ladder on one (K = 3) are evaluated against the prior, random,
the oracle and every model alone; bad inputs named. Also `confroute mmlu-pro`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_runtime_cli import run_main

from confroute.errors import ConfigError, DataError
from confroute.evaluation import ladder
from confroute.evaluation.run import EvaluateRequest, evaluate

from conftest import make_ladder_rows

ROOT = Path(__file__).resolve().parents[2]
MMLU_PRO = ROOT.parent / "shared/data/mmlu_pro"
PAIR_COLUMNS = {"local-8b": "small", "api-large": "large"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rows = make_ladder_rows(150)
    for i, row in enumerate(rows):
        row["split"] = "test" if i % 3 == 0 else "train"
        row["category"] = f"c{i % 4 // 2}"  # two sources, each with easy and hard prompts
    frame = pd.DataFrame(rows)
    return frame.assign(**{m: frame[c] for m, c in PAIR_COLUMNS.items()})


@pytest.fixture(scope="module")
def table(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluate") / "ratings.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def rated(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same test prompts as a pair's labelled truth (rating_edge / rating_cloud)."""
    test = frame[frame["split"] == "test"]
    path = tmp_path_factory.mktemp("evaluate") / "rated.csv"
    test.assign(rating_edge=test["small"], rating_cloud=test["large"], source=test["category"])[
        ["id", "prompt", "source", "rating_edge", "rating_cloud"]].to_csv(path, index=False)
    return path


CASES = ["pair truth", "pair ratings", "ladder ratings"]


def request_for(case: str, request: pytest.FixtureRequest, out: Path, **options: object
                ) -> EvaluateRequest:
    """The same evaluation for each case: K = 2 from a pair's truth, K = 2 and K = 3 from a
    ratings table."""
    if case == "pair truth":
        return EvaluateRequest(truth=str(request.getfixturevalue("rated")), out=out,
                               router=request.getfixturevalue("tiny_artifact"),
                               **options)  # type: ignore[arg-type]
    artifact = "priced_pair_artifact" if case == "pair ratings" else "tiny_ladder_artifact"
    return EvaluateRequest(ratings=request.getfixturevalue("table"), out=out,
                           router=request.getfixturevalue(artifact),
                           **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES)
def test_report_compares_the_router_with_every_reference(case: str, request, tmp_path: Path
                                                         ) -> None:
    report = evaluate(request_for(case, request, tmp_path, bootstrap=50))
    k = 3 if case.startswith("ladder") else 2
    assert report["prompts"] == 50 and len(report["models"]) == k
    curves = report["curves"]
    assert set(curves) == {"router", "prior", "oracle", "random"}
    assert curves["router"]["area"] > curves["random"]["area"]
    assert curves["oracle"]["cost_at_95"] <= curves["router"]["cost_at_95"]
    # the curve starts at the cheapest model alone and ends at the top model alone
    assert curves["router"]["curve"]["cost"][0] == pytest.approx(report["model_cost"][0])
    assert curves["router"]["curve"]["quality"][-1] == pytest.approx(report["model_quality"][-1])
    ci = curves["router"]["ci"]
    assert ci["area"]["low"] <= curves["router"]["area"] <= ci["area"]["high"]
    assert {"low", "high"} <= set(ci["area_minus_reference"])
    assert sum(report["operating_point"]["shares"].values()) == pytest.approx(1)
    for name in ("report.json", "report.md", "curve.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| router |" in (tmp_path / "report.md").read_text()
    assert ("metrics" in report) == (case == "pair truth")  # the paper's pair figures
    if case != "pair truth":  # what a ratings table was priced and counted with
        assert set(report["source_info"]["prices_per_mtok"]) == set(report["models"])


def test_a_pairs_truth_gives_its_area_as_apgr(request, tmp_path: Path) -> None:
    """On the cloud-calls axis the K-model curve of a pair is the two-model sweep: its area is
    APGR, for the router and the prior alike."""
    report = evaluate(request_for("pair truth", request, tmp_path, bootstrap=0))
    assert report["cost_unit"] == "calls"
    assert report["curves"]["router"]["area"] == pytest.approx(report["metrics"]["apgr"])
    prior = report["references"]["prior"]["metrics"]["apgr"]
    assert report["curves"]["prior"]["area"] == pytest.approx(prior)
    assert report["curves"]["oracle"]["area"] == pytest.approx(
        report["references"]["oracle"]["apgr"])


@pytest.mark.parametrize("case", ["pair ratings", "ladder ratings"])
def test_the_router_is_scored_on_test_rows_only(case: str, request, table: Path,
                                                tmp_path: Path) -> None:
    from confroute.dataset.ratings import read_ratings
    from confroute.runtime import Router

    spec = request_for(case, request, tmp_path, bootstrap=0)
    report = evaluate(spec)
    router = Router.load(spec.router)  # type: ignore[arg-type]
    rated = read_ratings(table, {m: {"input_per_mtok": p.input_per_mtok,
                                     "output_per_mtok": p.output_per_mtok}
                                 for m, p in zip(router.models, router.prices, strict=True)})
    test = rated.subset(np.flatnonzero(rated.splits == "test"))
    expected = ladder.summary(ladder.curve(router.adequacy(test.prompts), test.ratings,
                                           test.costs(), policy=router.policy.rule))
    assert report["curves"]["router"]["area"] == pytest.approx(expected["area"])
    assert np.isfinite(report["curves"]["router"]["area"])


@pytest.mark.parametrize("case", CASES)
def test_a_sample_is_seeded_and_the_scores_can_be_saved(case: str, request, tmp_path: Path
                                                        ) -> None:
    saved = tmp_path / "scores.csv"
    first = evaluate(request_for(case, request, tmp_path / "a", bootstrap=0, sample=20,
                                 save_scores=saved))
    again = evaluate(request_for(case, request, tmp_path / "b", bootstrap=0, sample=20))
    assert first["prompts"] == 20 and first["curves"] == again["curves"]
    used = pd.read_csv(saved)
    assert len(used) == 20 and {"id", "score"} <= set(used.columns)
    assert used["score"].between(0, 1).all()


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
    bad = tmp_path / "bad.parquet"
    change(pd.read_parquet(table)).to_parquet(bad)
    with pytest.raises(DataError) as error:
        evaluate(EvaluateRequest(ratings=bad, router=tiny_ladder_artifact, out=tmp_path / "out"))
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def test_sources_of_outcomes_and_scores_are_exclusive(table: Path, rated: Path,
                                                      tiny_artifact: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one source of outcomes"):
        EvaluateRequest(truth=str(rated), ratings=table, router=tiny_artifact)
    with pytest.raises(ConfigError, match="exactly one source of outcomes"):
        EvaluateRequest(router=tiny_artifact)
    with pytest.raises(ConfigError, match="two-model score"):
        EvaluateRequest(ratings=table, scores=table)


def test_the_cli_prints_the_figures(tiny_ladder_artifact: Path, tiny_artifact: Path,
                                    table: Path, rated: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(["evaluate", "--router", str(tiny_ladder_artifact),
                             "--ratings", str(table), "--out", str(tmp_path), "--bootstrap",
                             "20"], capsys, monkeypatch)
    assert code == 0 and "router area" in out and "prior area" in out and "wrote" in out
    assert "APGR" not in out
    code, out, _ = run_main(["evaluate", "--router", str(tiny_artifact), "--truth", str(rated),
                             "--out", str(tmp_path / "pair"), "--bootstrap", "20"],
                            capsys, monkeypatch)
    assert code == 0 and "APGR" in out and "router area" in out and "calibrated" in out
    code, _, err = run_main(["evaluate", "--router", str(tiny_artifact), "--ratings",
                             str(table), "--out", str(tmp_path / "two")], capsys, monkeypatch)
    assert code == 2 and "no model prices" in err
    code, _, err = run_main(["evaluate", "--router", str(tiny_ladder_artifact)], capsys,
                            monkeypatch)
    assert code == 2 and "--truth" in err and "--ratings" in err


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
