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
    routing = manifest["routing"]
    assert manifest["format_version"] == 2 and "threshold" not in manifest
    assert [m["name"] for m in routing["models"]] == ["edge", "cloud"]
    assert routing["heads"] == "cloud_needed" and routing["rule"] == "threshold"
    assert 0.0 <= routing["threshold"] <= 1.0
    assert routing["thresholds"] == [1.0 - routing["threshold"], 0.0]


def test_runtime_scores_route_and_calibrate(tiny_artifact: Path) -> None:
    router = Router.load(tiny_artifact, variant="fp32")
    rows = make_rows(40)
    scores = router.score([r["prompt"] for r in rows])
    assert scores.shape == (40,) and np.all((scores >= 0) & (scores <= 1))
    labels = np.array([r["label"] for r in rows])
    assert scores[labels == 1].mean() > scores[labels == 0].mean()
    threshold = router.calibrate([r["prompt"] for r in rows], 0.25).threshold
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
    import numpy as np

    from confroute.dataset import schema
    from confroute.training.fit import fit

    from conftest import tiny_config

    # The toy task is learnable from a few words, so a permutation that happens to agree with
    # the true labels on more than half the rows is still a (weak) signal the model learns (seed
    # 0: 38 of 72, val AUROC 0.81). A control needs labels that carry none: take the first seed
    # whose permutation (drawn as fit draws it) agrees with the truth on exactly half the rows.
    cfg = tiny_config(tiny_encoder_dir, tiny_data_file, **{"train.shuffle_labels": True})
    truth = schema.load(cfg.data).split("train")["label"].to_numpy()
    seed = next(s for s in range(100)
                if (np.random.default_rng(s + 1).permutation(truth) == truth).sum() * 2
                == len(truth))
    cfg = tiny_config(tiny_encoder_dir, tiny_data_file,
                      **{"train.shuffle_labels": True, "train.seed": seed})
    metrics = fit(cfg, tmp_path / "run").metrics
    assert metrics["shuffled_labels"] is True
    assert metrics["val_auroc"] < 0.8


def _damage(run: Path, name: str) -> None:
    path = run / name
    if name == "metrics.json":
        path.write_text("{not json")
    elif name == "val.parquet":
        path.write_text("id,prompt,label\n1,hi,0\n")  # CSV text under a .parquet name
    elif name == "config.yaml":
        path.write_text("data: [unclosed\n")
    else:  # truncate the weights to half their size, as a full disk or a kill would
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name", ["metrics.json", "val.parquet", "model/model.safetensors",
                                  "config.yaml"])
def test_export_names_a_damaged_run_file_and_the_rebuild_command(
        tiny_run_dir: Path, tmp_path: Path, name: str) -> None:
    from confroute.export import export

    run = Path(shutil.copytree(tiny_run_dir, tmp_path / "run"))
    _damage(run, name)
    stem = name.split("/")[0]
    with pytest.raises(ArtifactError, match=rf"{stem}.* is damaged .*confroute train .*--out "
                                            rf"{run} --overwrite") as caught:
        export(run, tmp_path / "out")
    assert "\n" not in str(caught.value)  # the CLI prints it as one line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_export_names_a_run_file_that_is_missing(tiny_run_dir: Path, tmp_path: Path) -> None:
    from confroute.export import export

    run = Path(shutil.copytree(tiny_run_dir, tmp_path / "run"))
    (run / "model" / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="missing model/model.safetensors.*confroute train"):
        export(run, tmp_path / "out")


def test_int8_scores_do_not_depend_on_batch_mates(tiny_artifact: Path) -> None:
    """Static int8: activation scales are fixed at export, so the score of a prompt alone (as
    serve scores it) equals its score in a batch of other prompts (as route and calibrate)."""
    router = Router.load(tiny_artifact, variant="int8")
    manifest = json.loads((tiny_artifact / "router.json").read_text())
    assert "int8" in manifest["metrics"]["export"]  # the drift check still ran
    prompts = [r["prompt"] for r in make_rows(40)]
    # batch-mates of very different length and content; 1e-5 is the fp32 padding noise above,
    # dynamic int8 differs by up to ~1e-2 (its activation range follows the batch)
    batched = router.score(prompts + ["word " * 200, "?" * 3])[: len(prompts)]
    alone = np.array([router.score([p])[0] for p in prompts])
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)


def test_int8_model_is_static_qdq(tiny_artifact: Path) -> None:
    import onnx

    graph = onnx.load(str(tiny_artifact / "model.int8.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops


def test_a_failed_export_leaves_the_existing_artifact_as_it_was(
        tiny_run_dir: Path, tiny_artifact: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from confroute import export as exporting

    art = Path(shutil.copytree(tiny_artifact, tmp_path / "art"))
    before = {p.name: p.read_bytes() for p in art.iterdir()}

    def full_disk(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exporting, "quantize_int8", full_disk)  # fails after model.onnx
    with pytest.raises(OSError, match="No space left"):
        exporting.export(tiny_run_dir, art)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in art.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no staging folder left
    manifest = exporting.export(tiny_run_dir, art)  # a good export replaces it
    assert json.loads((art / "router.json").read_text()) == manifest
    Router.load(art)


def test_int8_keeps_the_head_in_fp32(tiny_artifact: Path) -> None:
    """Quantising the logit itself left a coarse grid of scores (ties); the head's last layer
    stays fp32 while the encoder's MatMuls are int8."""
    import onnx

    from confroute.quantize import output_layers

    (head,) = output_layers(tiny_artifact / "model.onnx")
    graph = onnx.load(str(tiny_artifact / "model.int8.onnx")).graph
    initializers = {i.name: i for i in graph.initializer}
    node = next(n for n in graph.node if n.name == head)
    weight = initializers[node.input[1]]
    assert weight.data_type == onnx.TensorProto.FLOAT  # not fed by a DequantizeLinear
    assert any(n.op_type == "DequantizeLinear" for n in graph.node)  # the encoder is int8
