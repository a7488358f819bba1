"""End to end on a tiny model: train -> run dir -> export -> runtime, and their checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from confroute.errors import ArtifactError, InputError
from confroute.runtime import Router

from conftest import make_rows


def test_run_dir_layout_and_metrics(tiny_run_dir: Path) -> None:
    for name in ("config.yaml", "metrics.json", "val.parquet", "model/model.safetensors",
                 "model/tokenizer.json", "model/router_model.json", "checkpoints/best.ckpt"):
        assert (tiny_run_dir / name).is_file(), name
    metrics = json.loads((tiny_run_dir / "metrics.json").read_text())
    # The toy labels follow the wording, so even a tiny encoder separates them.
    assert metrics["val_auroc"] > 0.8
    assert metrics["train_rows"] + metrics["val_rows"] == len(make_rows())
    assert len(metrics["data_fingerprint"]) == 64


def test_saved_model_reloads_identically(tiny_run_dir: Path) -> None:
    import torch

    from confroute.training.model import RouterModel

    a, b = RouterModel.load(tiny_run_dir / "model"), RouterModel.load(tiny_run_dir / "model")
    batch = {k: torch.from_numpy(v) for k, v in a.text_encoder()(["hello there"]).items()}
    with torch.no_grad():
        assert torch.equal(a(**batch), b(**batch))


def test_manifest_describes_the_artifact(tiny_artifact: Path) -> None:
    manifest = json.loads((tiny_artifact / "router.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx", "tokenizer.json"}
    assert manifest["preprocess"]["max_length"] == 32
    assert manifest["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    assert manifest["label_rule"]["rule"] == "given"
    checks = manifest["metrics"]["export"]
    assert checks["parity"]["max_abs_logit_diff"] <= 1e-4
    assert 0.0 <= manifest["threshold"]["default"] <= 1.0


def test_runtime_scores_route_and_calibrate(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact, variant="fp32")
    rows = make_rows(40)
    scores = router.score([r["prompt"] for r in rows])
    assert scores.shape == (40,) and np.all((scores >= 0) & (scores <= 1))
    labels = np.array([r["label"] for r in rows])
    assert scores[labels == 1].mean() > scores[labels == 0].mean()
    threshold = router.calibrate([r["prompt"] for r in rows], 0.25)
    routes = [d.route for d in router.route_batch([r["prompt"] for r in rows], threshold)]
    assert routes.count("cloud") == 10
    assert router.route("What is 3 plus 4?", threshold=1.0).route == "edge"
    assert router.route("What is 3 plus 4?", threshold=0.0).route == "cloud"


def test_runtime_scores_chat_messages_by_the_recorded_turn(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 1?"},
            {"role": "assistant", "content": "1"}, {"role": "user", "content": "Prove it."}]
    assert router.turn == "last"
    assert router.score([chat])[0] == pytest.approx(router.score(["Prove it."])[0])


def test_batch_order_and_padding_do_not_change_scores(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact, variant="fp32")
    prompts = [r["prompt"] for r in make_rows(12)]
    together = router.score(prompts)
    alone = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_long_prompts_are_truncated_as_recorded(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact)
    long = "Prove this. " + "word " * 5000
    # Truncation keeps the first 32 tokens (right side), so the tail does not matter.
    assert router.score([long])[0] == pytest.approx(router.score([long + " extra tail"])[0])


@pytest.mark.parametrize("bad, message", [
    ([""], "empty"), (["   "], "empty"), ([None], "must be a string"), ([42], "must be a string"),
    ([[]], "no message with role 'user'"), ([[{"role": "user"}]], "'role' and 'content'"),
    (["x" * 1_000_001], "more than the limit"), (7, "list of strings"),
])
def test_runtime_rejects_bad_input(tiny_artifact: Path, bad: object, message: str) -> None:
    router = Router.load(tiny_artifact)
    with pytest.raises(InputError, match=message):
        router.score(bad)  # type: ignore[arg-type]


def test_runtime_rejects_bad_threshold(tiny_artifact: Path) -> None:
    with pytest.raises(InputError, match="threshold"):
        Router.load(tiny_artifact).route("hi", threshold=1.5)


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "artifact"))


def test_damaged_artifacts_are_named(tiny_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        Router.load(tmp_path / "nowhere")
    art = _copy(tiny_artifact, tmp_path)
    with open(art / "model.int8.onnx", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="model.int8.onnx is corrupt"):
        Router.load(art, variant="int8")
    Router.load(art, variant="fp32")  # the intact variant still loads
    (art / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match="tokenizer.json is missing.*confroute export"):
        Router.load(art, variant="fp32")
    (art / "router.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Router.load(art)
    (art / "router.json").unlink()
    with pytest.raises(ArtifactError, match="no router.json"):
        Router.load(art)


def test_export_refuses_an_incomplete_run(tmp_path: Path) -> None:
    from confroute.export import export

    with pytest.raises(ArtifactError, match="missing config.yaml.*confroute train"):
        export(tmp_path, tmp_path / "out")


def test_shuffled_label_control_lands_near_chance(tiny_encoder_dir: Path, tiny_data_file: Path,
                                                   tmp_path: Path) -> None:
    from confroute.training.fit import fit

    from conftest import tiny_config

    cfg = tiny_config(tiny_encoder_dir, tiny_data_file, **{"train.shuffle_labels": True})
    metrics = fit(cfg, tmp_path / "run").metrics
    assert metrics["shuffled_labels"] is True
    assert metrics["val_auroc"] < 0.8
