"""Every model's outcomes as supervision: routed models plus auxiliary ones on one encoder, with
one head per model or an IRT head; a trained router adapted to models it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from confroute.config import ModelConfig
from confroute.errors import ArtifactError, ConfigError
from confroute.stats import binary_auroc
from confroute.training import heads
from confroute.training.fit import routing_loss
from confroute.training.model import RouterModel

from conftest import LADDER_PRICES, make_ladder_rows, tiny_config

ROUTED = ["small", "large"]
AUXILIARY = ["medium", "helper", "oddball"]
# The IRT forms' abilities start random and must move far in the 36 steps of a tiny run (a
# model answering only hard prompts turns around): a higher head learning rate.
FORMS = {"per-model": {"model.head_form": "per_model"},
         "irt": {"model.head_form": "irt", "model.irt_dims": 2,
                 "train.head_learning_rate": 1e-2},
         "irt-mlp": {"model.head_form": "irt", "model.irt_dims": 3, "model.head": "mlp",
                     "model.head_hidden": 16, "train.head_learning_rate": 1e-2}}


def aux_rows(n: int = 96) -> list[dict]:
    """The ladder rows plus `helper` (answers what `small` answers; unknown on every third
    prompt), `oddball` (answers only the hard prompts) and `newcomer`, a model no router trains
    on here (answers what `medium` answers)."""
    return [{**r, "helper": None if i % 3 == 0 else r["small"], "oddball": 1.0 - r["small"],
             "newcomer": r["medium"]} for i, r in enumerate(make_ladder_rows(n))]


@pytest.fixture(scope="module")
def aux_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("aux_data")
    table, prices = folder / "ratings.jsonl", folder / "prices.yaml"
    table.write_text("".join(json.dumps(r) + "\n" for r in aux_rows()))
    prices.write_text(yaml.safe_dump({**LADDER_PRICES, "newcomer": {"input_per_mtok": 0.3,
                                                                    "output_per_mtok": 0.6}}))
    return table, prices


def aux_config(encoder_dir: Path, files: tuple[Path, Path], **overrides: object):
    values: dict[str, object] = {"data.models": ROUTED, "data.prices": str(files[1]),
                                 "data.auxiliary_models": AUXILIARY}
    values.update(overrides)
    return tiny_config(encoder_dir, files[0], **values)


@pytest.fixture(scope="module", params=list(FORMS))
def form_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             tiny_encoder_dir: Path, aux_files: tuple[Path, Path]) -> tuple[str, Path]:
    from confroute.training.fit import fit

    run = tmp_path_factory.mktemp(f"aux-{request.param}")
    fit(aux_config(tiny_encoder_dir, aux_files, **FORMS[request.param]), run)
    return request.param, run


def test_each_head_form_trains_on_routed_and_auxiliary_models(form_run: tuple[str, Path]
                                                             ) -> None:
    name, run = form_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ladder"]["models"] == ROUTED
    assert metrics["ladder"]["auxiliary"] == AUXILIARY
    assert metrics["val_auroc"] > 0.7, (name, metrics["val_auroc"])  # routed heads only
    model = RouterModel.load(run / "model")
    assert model.models == ROUTED and model.auxiliary == AUXILIARY
    assert model.cfg.head_form == FORMS[name]["model.head_form"]
    rows = make_ladder_rows(40)
    batch = {k: torch.from_numpy(v) for k, v in
             model.text_encoder()([r["prompt"] for r in rows]).items()}
    with torch.no_grad():
        routed, every = model(**batch), model.all_logits(**batch)
    assert routed.shape == (40, 2) and every.shape == (40, 5)
    assert torch.equal(routed, every[:, :2])  # export sees the routed models only
    hard = np.array([r["small"] == 0.0 for r in rows])
    # the auxiliary heads learned too, `helper` (easy prompts) from its known targets only; the
    # checkpoint is the first epoch whose routed heads peak, where an IRT head has not yet
    # turned `oddball` (hard prompts only) against the shared difficulty (see below)
    assert binary_auroc(~hard, every[:, 3].numpy()) > 0.7, name
    if name == "per-model":
        assert binary_auroc(hard, every[:, 4].numpy()) > 0.7


def test_an_irt_head_learns_a_model_that_answers_only_hard_prompts() -> None:
    torch.manual_seed(0)
    hard = (torch.arange(200) % 2).float()
    features = torch.randn(200, 16) + hard[:, None] * 3 * torch.randn(16)
    targets = torch.stack([1 - hard, torch.ones(200), hard], 1)  # easy-only, all, hard-only
    head = heads.IRTHead(16, 3, dims=2)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(features), targets)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = head(features)
    assert binary_auroc(hard.numpy() == 1, logits[:, 2].numpy()) > 0.95
    assert binary_auroc(hard.numpy() == 0, logits[:, 0].numpy()) > 0.95


def test_an_auxiliary_run_exports_an_artifact_of_the_routed_models(
        form_run: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from test_runtime_cli import run_main

    from confroute.export import export
    from confroute.quantize import output_layers
    from confroute.runtime import Router

    name, run = form_run
    art = tmp_path / "art"
    manifest = export(run, art)  # fp32 and int8, as `confroute export` writes by default
    assert manifest["routing"]["heads"] == "adequacy"
    assert [m["name"] for m in manifest["routing"]["models"]] == ROUTED
    assert manifest["training_data"]["auxiliary_models"] == AUXILIARY
    assert manifest["base_encoder"]["head_form"] == FORMS[name]["model.head_form"]
    assert manifest["metrics"]["export"]["parity"]["max_abs_logit_diff"] <= 1e-4
    # the head stays fp32 in int8: an IRT head's ability MatMul and its prompt layer (whose
    # difficulty, quantised to uint8, tied distinct prompts)
    assert len(output_layers(art / "model.onnx")) == (1 if name == "per-model" else 2)
    prompts = [f"Prove that {i} squared plus {j} is prime." for i in range(15) for j in range(15)]
    fp32, int8 = (Router.load(art, variant=v) for v in ("fp32", "int8"))
    for variant, router in (("fp32", fp32), ("int8", int8)):
        assert router.models == ROUTED
        logits = router.logits(prompts)
        assert logits.shape == (len(prompts), 2)
        # a quantised head tied 27 of 400 prompts; int8 activations may still tie one or two
        distinct = [len(np.unique(logits[:, k])) for k in range(2)]
        assert min(distinct) >= 0.99 * len(prompts), (name, variant, distinct)
    np.testing.assert_allclose(int8.adequacy(prompts), fp32.adequacy(prompts), atol=0.05)
    assert Router.load(art).decide("What is 2 plus 3?").model in ROUTED
    # the commands that read artifacts work on it unchanged
    code, out, _ = run_main(["route", str(art), "What is 4 plus 9?"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["model"] in ROUTED
    # every third row tested: easy and hard ones (every fourth would test only easy rows)
    rows = [{**r, "split": "test" if i % 3 == 0 else "train"} for i, r in enumerate(aux_rows())]
    table, truth = tmp_path / "ratings.jsonl", tmp_path / "truth.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    truth.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"], "rating_edge":
                                         r["small"], "rating_cloud": r["large"]}) + "\n"
                             for r in rows))
    code, out, err = run_main(["evaluate", "--router", str(art), "--ratings", str(table),
                             "--out", str(tmp_path / "ladder"), "--bootstrap", "20"], capsys,
                            monkeypatch)
    assert code == 0 and "router area" in out, err
    code, out, err = run_main(["evaluate", "--router", str(art), "--truth", str(truth), "--out",
                             str(tmp_path / "pair"), "--bootstrap", "20"], capsys, monkeypatch)
    assert code == 0 and "APGR" in out, err


@pytest.mark.parametrize("form", list(FORMS))
def test_the_design_reproduces_each_head(form: str) -> None:
    values = {k.split(".", 1)[1]: v for k, v in FORMS[form].items() if k.startswith("model.")}
    cfg = ModelConfig(**values)  # type: ignore[arg-type]
    torch.manual_seed(0)
    head = heads.build(cfg, 12, 5).eval()
    features = torch.randn(7, 12)
    x, offset = heads.design(head, features)
    phi = heads.model_parameters(head)
    assert torch.allclose(x @ phi.T + offset[:, None], head(features), atol=1e-5)
    # a head for other models: the prompt side is kept, the models' parameters replaced
    other = heads.with_models(head, phi[[4, 0]] * 2)
    expected = (x @ (phi[[4, 0]] * 2).T + offset[:, None])
    assert torch.allclose(other(features), expected, atol=1e-5)
    assert head(features).shape == (7, 5)  # the original is untouched


def test_routing_loss_weighs_auxiliary_targets_and_skips_unknown_ones() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 0.3, -0.7, 1.0]])
    targets = torch.tensor([[1.0, 0.0, float("nan"), 1.0], [0.0, 1.0, 1.0, float("nan")]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    routed = bce(logits[:, :2], targets[:, :2])
    known = bce(torch.stack([logits[1, 2], logits[0, 3]]), torch.tensor([1.0, 1.0]))
    assert torch.isclose(routing_loss(logits, targets, 2, 0.0), routed)
    assert torch.isclose(routing_loss(logits, targets, 2, 0.5), routed + 0.5 * known)
    nothing = torch.full((2, 2), float("nan"))
    loss = routing_loss(logits, torch.cat([targets[:, :2], nothing], 1), 2, 1.0)
    assert torch.isclose(loss, routed)  # no known auxiliary target: no term, no NaN


def test_bad_head_settings_are_named(tiny_encoder_dir: Path) -> None:
    with pytest.raises(ConfigError, match="model.irt_dims must be >= 1"):
        ModelConfig(head_form="irt", irt_dims=0)
    cfg = ModelConfig(encoder=str(tiny_encoder_dir), head_form="irt")
    with pytest.raises(ConfigError, match="need a K-model table"):
        RouterModel(cfg)
    with pytest.raises(ConfigError, match="distinct model names"):
        RouterModel(cfg, models=["a", "b"], auxiliary=["b"])


# --- a new model the router never trained on ----------------------------------------------


def new_pair_table(folder: Path, rows: list[dict]) -> tuple[str, str]:
    """The rows as a table of the pair small -> newcomer, the price file beside it."""
    table = folder / "pair.jsonl"
    table.write_text("".join(json.dumps({k: r[k] for k in ("id", "prompt", "category", "small",
                                                            "newcomer", "tokens_out")}) + "\n"
                             for r in rows))
    prices = folder / "prices.yaml"
    prices.write_text(yaml.safe_dump({m: {"input_per_mtok": p, "output_per_mtok": p}
                                      for m, p in (("small", 0.1), ("newcomer", 0.3))}))
    return str(table), str(prices)


def test_a_new_model_is_fitted_on_a_few_labels(form_run: tuple[str, Path]) -> None:
    from confroute.training.adapt import adapt

    name, run = form_run
    base = RouterModel.load(run / "model")
    labelled, unseen = aux_rows(96)[:48], aux_rows(200)[96:]
    targets = np.array([[r["small"], r["newcomer"]] for r in labelled])
    router = adapt(base, [r["prompt"] for r in labelled], targets, ["small", "newcomer"])
    assert router.models == ["small", "newcomer"]
    assert router.auxiliary == ["large", *AUXILIARY]
    batch = {k: torch.from_numpy(v) for k, v in
             router.text_encoder()([r["prompt"] for r in unseen]).items()}
    with torch.no_grad():
        probs = torch.sigmoid(router(**batch)).numpy()
        before = torch.sigmoid(base.all_logits(**batch)).numpy()
    truth = np.array([r["newcomer"] for r in unseen])
    assert binary_auroc(truth == 1.0, probs[:, 1]) > 0.7, name
    # the encoder, the prompt side and the models it already knew are untouched
    assert torch.equal(router.encoder.embeddings.word_embeddings.weight,
                       base.encoder.embeddings.word_embeddings.weight)
    np.testing.assert_allclose(torch.sigmoid(router.all_logits(**batch)).detach().numpy()[:, 2:],
                               before[:, 1:], atol=1e-6)


def test_adapting_from_the_command_writes_an_exportable_run(
        form_run: tuple[str, Path], tmp_path: Path, tiny_encoder_dir: Path) -> None:
    from confroute.config import ExportConfig
    from confroute.export import export
    from confroute.runtime import Router
    from confroute.training.fit import fit

    name, run = form_run
    if name != "irt":
        pytest.skip("one head form is enough for the command's run directory")
    table, prices = new_pair_table(tmp_path, aux_rows(120)[:80])
    cfg = tiny_config(tiny_encoder_dir, Path(table), **{
        "data.models": ["newcomer", "small"], "data.prices": prices,
        "train.adapt_from": str(run), "model.head": "mlp"})
    result = fit(cfg, tmp_path / "adapted")
    metrics = result.metrics
    assert metrics["adapted_from"] == str(run)
    assert metrics["train_rows"] + metrics["val_rows"] == 80
    assert metrics["val_auroc"] > 0.7 and metrics["ladder"]["models"] == ["small", "newcomer"]
    written = yaml.safe_load((tmp_path / "adapted" / "config.yaml").read_text())
    assert written["model"]["head_form"] == "irt"  # the base run's model, not the flags'
    assert written["model"]["head"] == "linear"
    manifest = export(tmp_path / "adapted", tmp_path / "art", ExportConfig(int8=False))
    # the kept models of the base run have no output: the routed pair's logits only
    assert manifest["routing"]["heads"] == "adequacy"
    assert manifest["training_data"]["adapted_from"] == str(run)
    assert manifest["training_data"]["auxiliary_models"] == ["large", *AUXILIARY]
    router = Router.load(tmp_path / "art")
    assert router.models == ["small", "newcomer"]
    assert router.logits(["What is 2 plus 3?"]).shape == (1, 2)
    assert router.decide("Prove that 7 squared plus 3 is prime.").model in router.models
    val = pd.read_parquet(tmp_path / "adapted" / "val.parquet")
    probs = router.adequacy(val["prompt"].tolist())
    assert binary_auroc(val["target:newcomer"].to_numpy() == 1.0, probs[:, 1]) > 0.7


def test_adapting_refuses_what_it_cannot_adapt(
        form_run: tuple[str, Path], tmp_path: Path, tiny_encoder_dir: Path,
        tiny_run_dir: Path) -> None:
    from confroute.training.adapt import adapt
    from confroute.training.fit import fit

    _, run = form_run
    table, prices = new_pair_table(tmp_path, aux_rows(40))
    settings = {"data.models": ["newcomer", "small"], "data.prices": prices}
    with pytest.raises(ArtifactError, match="not a run directory"):
        fit(tiny_config(tiny_encoder_dir, Path(table), **settings,
                        **{"train.adapt_from": str(tmp_path / "nowhere")}), tmp_path / "a")
    with pytest.raises(ConfigError, match="needs a router for K models"):
        fit(tiny_config(tiny_encoder_dir, Path(table), **settings,
                        **{"train.adapt_from": str(tiny_run_dir)}), tmp_path / "b")
    base = RouterModel.load(run / "model")
    with pytest.raises(ConfigError, match="one target per prompt and model"):
        adapt(base, ["a", "b"], np.zeros((2, 3)), ["x", "y"])
    with pytest.raises(ConfigError, match="prior scale must be a number > 0"):
        adapt(base, ["a", "b"], np.zeros((2, 2)), ["x", "y"], prior_scale=0.0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
