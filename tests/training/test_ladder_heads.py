"""A router for K models: one encoder and K heads, for every encoder family; trained with
Lightning on a K-model ratings table, exported with parity and int8 checks, and routed by the
torch-free runtime with the cheapest-adequate policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_encoders import FAMILIES

from confroute.errors import ArtifactError, ConfigError
from confroute.runtime import Router
from confroute.stats import binary_auroc

from conftest import LADDER, ladder_config, make_ladder_rows


@pytest.fixture(scope="module", params=list(FAMILIES))
def ladder_family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  tiny_encoder_dir: Path, ladder_files: tuple[Path, Path]
                  ) -> tuple[str, Path, Path]:
    from confroute.export import export
    from confroute.training.fit import fit

    run = tmp_path_factory.mktemp(f"ladder-{request.param}")
    fit(ladder_config(tiny_encoder_dir, ladder_files, **FAMILIES[request.param]), run)
    artifact = run / "artifact"
    export(run, artifact)
    return request.param, run, artifact


def test_every_family_trains_k_heads_and_exports_them(ladder_family: tuple[str, Path, Path]
                                                      ) -> None:
    _, run, artifact = ladder_family
    metrics = json.loads((run / "metrics.json").read_text())
    # data.models was given as large, small, medium: the ladder is ordered by price
    assert metrics["ladder"]["models"] == LADDER
    assert set(metrics["val_prior"]["per_model"]) == set(LADDER)
    manifest = json.loads((artifact / "router.json").read_text())
    assert "threshold" not in manifest and manifest["routing"]["heads"] == "adequacy"
    assert [m["name"] for m in manifest["routing"]["models"]] == LADDER
    assert manifest["routing"]["models"][2] == {"name": "large", "input_per_mtok": 2.0,
                                                "output_per_mtok": 8.0}
    assert manifest["routing"]["output_tokens"] == 100.0
    assert manifest["metrics"]["export"]["parity"]["max_abs_logit_diff"] <= 1e-4
    prompts = [r["prompt"] for r in make_ladder_rows(20)]
    for variant in ("fp32", "int8"):
        router = Router.load(artifact, variant=variant)
        assert router.models == LADDER and router.heads == "adequacy"
        probs = router.adequacy(prompts)
        assert probs.shape == (20, 3) and np.all((probs >= 0) & (probs <= 1))


def test_k_heads_learn_which_model_is_adequate(ladder_family: tuple[str, Path, Path]) -> None:
    name, run, artifact = ladder_family
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_auroc"] > 0.7, (name, metrics["val_auroc"])
    rows = make_ladder_rows(40)
    probs = Router.load(artifact, variant="fp32").adequacy([r["prompt"] for r in rows])
    hard = np.array([r["small"] == 0.0 for r in rows])
    # the cheapest model's head ranks easy prompts (it answers them) above hard ones; the
    # frozen random tiny encoder gives too little signal for every head in four epochs
    if name != "frozen-mlp":
        assert binary_auroc(~hard, probs[:, 0]) > 0.6, name


def test_saved_k_head_model_reloads_identically(ladder_family: tuple[str, Path, Path]) -> None:
    from confroute.training.model import RouterModel

    _, run, _ = ladder_family
    a, b = RouterModel.load(run / "model"), RouterModel.load(run / "model")
    assert a.models == LADDER
    batch = {k: torch.from_numpy(v) for k, v in a.text_encoder()(["hello there", "x"]).items()}
    with torch.no_grad():
        out = a(**batch)
        assert out.shape == (2, 3) and torch.equal(out, b(**batch))


def test_decisions_name_the_model_and_why(ladder_router: Router) -> None:
    prompts = [r["prompt"] for r in make_ladder_rows(12)]
    decisions = ladder_router.decide_batch(prompts)
    for decision, p in zip(decisions, ladder_router.adequacy(prompts), strict=True):
        assert decision.model in LADDER and decision.reason
        assert decision.probabilities == pytest.approx(dict(zip(LADDER, p, strict=True)))
        k = LADDER.index(decision.model)
        t = ladder_router.policy.thresholds
        cleared = np.flatnonzero(p >= t)
        assert k == (cleared[0] if cleared.size else int(np.argmax(p)))
    # per-request overrides: a zero threshold on the cheapest model takes every prompt
    assert {d.model for d in ladder_router.decide_batch(prompts, thresholds={"small": 0.0})} \
        == {"small"}
    forced = ladder_router.decide(prompts[0], model="large")
    assert forced.model == "large" and forced.reason == "forced by the request"
    assert forced.to_dict()["model"] == "large"


@pytest.mark.parametrize("kwargs, message", [
    ({"thresholds": {"huge": 0.5}}, "unknown model 'huge'"),
    ({"thresholds": {"small": 1.5}}, "threshold must be a number in [0, 1]"),
    ({"thresholds": {"small": float("nan")}}, "threshold must be a number in [0, 1]"),
    ({"model": "huge"}, "unknown model 'huge'"),
])
def test_bad_overrides_are_named(ladder_router: Router, kwargs: dict, message: str
                                 ) -> None:
    from confroute.errors import InputError

    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ladder_router.decide_batch(["What is 2 plus 2?"], **kwargs)


def test_calibration_to_a_cost_and_to_shares(ladder_router: Router) -> None:
    prompts = [r["prompt"] for r in make_ladder_rows(120)]
    costs = ladder_router.costs(prompts)
    assert costs.shape == (120, 3) and np.all(np.diff(costs, axis=1) > 0)
    budget = float(costs[:, 1].mean())  # as much as sending everything to the middle model
    policy = ladder_router.calibration(prompts, target_cost=budget).policy
    chosen = policy.route(ladder_router.adequacy(prompts))
    assert costs[np.arange(120), chosen].mean() <= budget + 1e-15
    shares = ladder_router.calibration(prompts, shares=[0.5, 0.0, 0.5])
    assert shares.shares["medium"] == 0.0 and shares.policy.thresholds[2] == 0.0
    with pytest.raises(ConfigError, match="below the cheapest"):
        ladder_router.calibration(prompts, target_cost=float(costs[:, 0].mean()) / 2)


def test_a_ladder_refuses_one_threshold(ladder_router: Router) -> None:
    from confroute.errors import InputError

    with pytest.raises(InputError, match="one threshold is for two models"):
        ladder_router.route("hi", threshold=0.5)
    assert ladder_router.route("hi") == ladder_router.decide("hi")  # one decision, two names
    # the two-model score of a ladder: P(a model above the cheapest is needed)
    score = ladder_router.score(["hi"])
    assert score == pytest.approx(1 - ladder_router.adequacy(["hi"])[:, 0])


def test_two_model_artifacts_are_the_smallest_ladder(router: Router) -> None:
    assert type(router) is Router and router.models == ["edge", "cloud"]
    assert router.logits(["hi", "there"]).shape == (2,)  # one "cloud needed" logit
    assert router.adequacy(["hi", "there"]).shape == (2, 2)


def test_export_refuses_one_threshold_for_k_models(tiny_ladder_run: Path, tmp_path: Path
                                                   ) -> None:
    from confroute.config import ExportConfig
    from confroute.export import export

    with pytest.raises(ArtifactError, match="export.threshold is one threshold"):
        export(tiny_ladder_run, tmp_path / "art", ExportConfig(threshold=0.4, int8=False))
    assert not (tmp_path / "art" / "router.json").exists()


def test_export_defaults_to_the_utility_rule_calibrated_to_the_oracle_cost(
        utility_ladder_artifact: Path, tiny_ladder_run: Path) -> None:
    import pandas as pd

    from confroute.policy import choose_utility

    router = Router.load(utility_ladder_artifact, variant="fp32")
    assert router.policy.rule == "utility"
    manifest = json.loads((utility_ladder_artifact / "router.json").read_text())
    source = manifest["routing"]["source"]
    assert source["source"] == "validation cost of the cheapest adequate model"
    # lambda is the smallest whose mean cost on the validation prompts fits the target
    val = pd.read_parquet(tiny_ladder_run / "val.parquet")
    prompts = val["prompt"].tolist()
    router = Router.load(utility_ladder_artifact, variant=manifest["onnx"]["default_variant"])
    probs, costs = router.adequacy(prompts), router.costs(prompts)

    def mean_cost(lam: float) -> float:
        chosen = choose_utility(probs, costs, lam)
        return float(costs[np.arange(len(chosen)), chosen].mean())

    lam = router.policy.lambda_per_usd
    assert mean_cost(lam) <= source["target_cost"] * (1 + 1e-9)
    if lam > 0:
        assert mean_cost(lam * 0.99) > source["target_cost"]


def test_utility_decisions_weigh_probability_against_cost(utility_ladder_artifact: Path
                                                          ) -> None:
    from confroute.errors import InputError

    router = Router.load(utility_ladder_artifact, variant="fp32")
    prompts = [r["prompt"] for r in make_ladder_rows(12)]
    probs, costs = router.adequacy(prompts), router.costs(prompts)
    for lam in (0.0, router.policy.lambda_per_usd, 1e9):
        decisions = router.decide_batch(prompts, lambda_per_usd=lam)
        expected = np.argmax(probs - lam * costs, axis=1)
        assert [d.model_index for d in decisions] == expected.tolist()
        assert all("lambda" in d.reason for d in decisions)
    assert {d.model for d in router.decide_batch(prompts, lambda_per_usd=1e9)} == {"small"}
    assert router.choose(prompts).tolist() == [d.model_index for d in router.decide_batch(prompts)]
    with pytest.raises(InputError, match="override lambda_per_usd, not thresholds"):
        router.decide_batch(prompts, thresholds={"small": 0.5})
    with pytest.raises(InputError, match="lambda_per_usd must be a number >= 0"):
        router.decide_batch(prompts, lambda_per_usd=-1.0)


def test_val_auroc_skips_a_model_the_validation_split_cannot_judge() -> None:
    from confroute.training.fit import DefinedMacroAUROC

    probs = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0.8, 0.3, 0.4], [0.2, 0.7, 0.6]])
    target = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 1]])  # model 3: one class
    metric = DefinedMacroAUROC(3)
    metric.update(probs, target)
    assert float(metric.compute()) == 1.0  # the mean of models 1 and 2 only
    target[:, 0] = 1  # now only model 2 has both classes
    metric = DefinedMacroAUROC(3)
    metric.update(probs, target)
    assert float(metric.compute()) == 1.0
    target[:, 1] = 0  # and none
    metric = DefinedMacroAUROC(3)
    metric.update(probs, target)
    assert torch.isnan(metric.compute())
