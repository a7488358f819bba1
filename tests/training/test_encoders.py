"""Encoder families (truncated, layer concatenation, MLP head, frozen, model2vec static):
each trains, saves, reloads, exports to ONNX with the same two inputs, passes the parity and
int8 checks, and is served by the unchanged torch-free runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from confroute.errors import ConfigError
from confroute.runtime import Router

from conftest import make_rows, tiny_config

FAMILIES = {
    "first-layer": {"model.layers": 1},
    "all-layers": {"model.layers": None},
    "concat-0-1-2": {"model.layers": 2, "model.pool_layers": [0, 1, 2], "model.head": "mlp",
                     "model.head_hidden": 16},
    "frozen-mlp": {"model.freeze_encoder": True, "model.head": "mlp", "model.head_hidden": 16,
                   "train.head_learning_rate": 1e-2},
    "static": {"model.family": "static", "model.static_dims": 16,
               "train.learning_rate": 1e-2, "train.head_learning_rate": 1e-2},
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               tiny_encoder_dir: Path, tiny_data_file: Path) -> tuple[str, Path, Path]:
    from confroute.export import export
    from confroute.training.fit import fit

    run = tmp_path_factory.mktemp(f"run-{request.param}")
    fit(tiny_config(tiny_encoder_dir, tiny_data_file, **FAMILIES[request.param]), run)
    artifact = run / "artifact"
    export(run, artifact)
    return request.param, run, artifact


def test_family_exports_with_parity_and_is_served(family_run: tuple[str, Path, Path]) -> None:
    name, run, artifact = family_run
    manifest = json.loads((artifact / "router.json").read_text())
    assert manifest["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    assert manifest["metrics"]["export"]["parity"]["max_abs_logit_diff"] <= 1e-4
    assert "int8" in manifest["metrics"]["export"]
    encoder = manifest["base_encoder"]
    assert encoder["family"] == ("static" if name == "static" else "transformer")
    if name == "first-layer":
        assert encoder["layers"] == 1
    if name == "all-layers":
        assert encoder["layers"] == 2
    if name == "concat-0-1-2":
        assert encoder["pool_layers"] == [0, 1, 2] and encoder["features"] == 3 * 32
    rows = make_rows(40)
    for variant in ("fp32", "int8"):
        scores = Router.load(artifact, variant=variant).score([r["prompt"] for r in rows])
        assert scores.shape == (40,) and np.all((scores >= 0) & (scores <= 1))
    # The toy labels follow the wording: every family learns them.
    assert json.loads((run / "metrics.json").read_text())["val_auroc"] > 0.8


def test_family_reloads_identically(family_run: tuple[str, Path, Path]) -> None:
    from confroute.training.model import RouterModel

    _, run, _ = family_run
    a, b = RouterModel.load(run / "model"), RouterModel.load(run / "model")
    batch = {k: torch.from_numpy(v) for k, v in a.text_encoder()(["hello there", "x"]).items()}
    with torch.no_grad():
        assert torch.equal(a(**batch), b(**batch))


def test_frozen_encoder_keeps_pretrained_weights(family_run: tuple[str, Path, Path],
                                                 tiny_encoder_dir: Path) -> None:
    from transformers import AutoModel

    from confroute.training.model import RouterModel

    name, run, _ = family_run
    if name != "frozen-mlp":
        pytest.skip("frozen family only")
    trained = RouterModel.load(run / "model").encoder.state_dict()
    initial = AutoModel.from_pretrained(tiny_encoder_dir).state_dict()
    assert all(torch.equal(trained[k], initial[k]) for k in trained)


def test_static_graph_is_a_lookup_and_a_mean(family_run: tuple[str, Path, Path]) -> None:
    """The runtime's static router equals numpy: gather rows, masked mean, L2 norm, MLP-free
    linear head (the graph computes nothing else)."""
    from confroute.training.model import RouterModel

    name, run, artifact = family_run
    if name != "static":
        pytest.skip("static family only")
    model = RouterModel.load(run / "model")
    table = model.encoder.embedding.weight.detach().numpy()
    weight = model.head.weight.detach().numpy()[0]
    bias = float(model.head.bias.detach().numpy()[0])
    prompts = [r["prompt"] for r in make_rows(12)]
    feed = Router.load(artifact, variant="fp32")._encoder(prompts)
    mask = feed["attention_mask"][..., None]
    mean = (table[feed["input_ids"]] * mask).sum(1) / mask.sum(1)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    router = Router.load(artifact, variant="fp32")
    np.testing.assert_allclose(router.logits(prompts), mean @ weight + bias, atol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"model.pool_layers": [4]}, "model.pool_layers has 4"),
    ({"model.pool_layers": []}, "at least one layer"),
    ({"model.family": "static", "model.pool_layers": [0]}, "token lookup and a mean"),
    ({"model.layers": 0}, "model.layers must be >= 1"),
])
def test_bad_family_settings_name_the_key(overrides: dict, message: str, tiny_encoder_dir: Path,
                                          tiny_data_file: Path) -> None:
    from confroute.training.model import RouterModel

    with pytest.raises(ConfigError, match=message):
        RouterModel(tiny_config(tiny_encoder_dir, tiny_data_file, **overrides).model)


def test_layers_is_a_ceiling(tiny_encoder_dir: Path, tiny_data_file: Path) -> None:
    """model.layers above the encoder's depth uses the whole encoder (the default must work
    for shallow encoders too); below it, only the first layers are loaded."""
    from confroute.training.model import RouterModel

    for layers, depth in ((5, 2), (2, 2), (1, 1)):
        cfg = tiny_config(tiny_encoder_dir, tiny_data_file, **{"model.layers": layers}).model
        assert RouterModel(cfg).encoder.config.num_hidden_layers == depth


def test_saved_run_without_family_fields_loads(tiny_run_dir: Path, tmp_path: Path) -> None:
    """A model directory written before the family settings existed reloads as before."""
    import shutil

    from confroute.training.model import RouterModel

    old = tmp_path / "model"
    shutil.copytree(tiny_run_dir / "model", old)
    settings = json.loads((old / "router_model.json").read_text())
    for key in ("family", "layers", "pool_layers", "head", "head_hidden", "freeze_encoder",
                "static_dims"):
        settings.pop(key)
    (old / "router_model.json").write_text(json.dumps(settings))
    a, b = RouterModel.load(old), RouterModel.load(tiny_run_dir / "model")
    batch = {k: torch.from_numpy(v) for k, v in a.text_encoder()(["hello"]).items()}
    with torch.no_grad():
        assert torch.equal(a(**batch), b(**batch))


def _train_config(argv: list[str]):
    from confroute.cli import build_parser, train
    from confroute.config import RunConfig, build

    parser = build_parser("train")
    train.before_parse(parser, argv)
    return build(RunConfig, parser.instantiate(parser.parse_args(argv)))


def test_preset_applies_before_the_users_flags(tmp_path: Path, capsys) -> None:
    cfg = _train_config(["--out", "x", "--preset", "micro", "--train.max_epochs", "1"])
    assert cfg.model.family == "static" and not cfg.model.freeze_encoder
    assert cfg.train.max_epochs == 1  # the user's flag wins over the preset's 5
    (tmp_path / "run.yaml").write_text("train:\n  max_epochs: 2\n")
    cfg = _train_config(["--out", "x", "--preset=micro", "--config", str(tmp_path / "run.yaml")])
    assert cfg.model.family == "static" and cfg.train.max_epochs == 2  # so does a config file
    with pytest.raises(ConfigError, match="unknown preset 'nano'; choose one of full, micro"):
        _train_config(["--out", "x", "--preset", "nano"])
    from confroute.cli import main

    assert main(["train", "--out", str(tmp_path / "r"), "--preset", "nano"]) == 2
    assert "unknown preset 'nano'" in capsys.readouterr().err
