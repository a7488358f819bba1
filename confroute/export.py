"""Export a run directory to a self-describing ONNX router artifact, checked against torch.

Artifact directory:
  model.onnx          fp32, inputs per manifest, output `logit` [batch]; score = sigmoid(logit)
  model.int8.onnx     dynamic int8 (per-channel weights), optional
  tokenizer.json      the tokenizer the runtime uses (tokenizers library, no transformers)
  router.json         manifest: format, encoder, preprocessing, threshold, label rule, data
                      fingerprint, metrics (validation, parity, int8 drift), sha256 of each file
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confroute import __version__
from confroute.config import ExportConfig, RunConfig, load_yaml
from confroute.errors import ArtifactError
from confroute.runtime import FORMAT_VERSION, MANIFEST, Router, sha256_file
from confroute.stats import binary_auroc
from confroute.training import encoders
from confroute.training.model import RouterModel

RUN_FILES = ("config.yaml", "metrics.json", "val.parquet", "model/router_model.json")


def export(run_dir: str | Path, out_dir: str | Path, cfg: ExportConfig | None = None
           ) -> dict[str, Any]:
    """Write the artifact for `run_dir` into `out_dir` and return its manifest."""
    cfg = cfg or ExportConfig()
    run_dir, out = Path(run_dir), Path(out_dir)
    run_cfg, metrics, val = _read_run(run_dir)
    model = RouterModel.load(run_dir / "model")
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / "model.onnx", cfg.opset)
    shutil.copyfile(run_dir / "model" / "tokenizer.json", out / "tokenizer.json")
    manifest = _manifest(model, run_cfg, metrics)
    files = ["model.onnx", "tokenizer.json"]
    if cfg.int8:
        quantize_int8(out / "model.onnx", out / "model.int8.onnx")
        files.append("model.int8.onnx")
    manifest["files"] = {name: sha256_file(out / name) for name in files}
    _write(out, manifest)

    prompts, labels = val["prompt"].tolist(), val["label"].to_numpy(dtype=float)
    parity = check_parity(model, Router.load(out, variant="fp32"), prompts[: cfg.parity_prompts],
                          cfg.parity_tolerance)
    fp32 = Router.load(out, variant="fp32").score(prompts)
    checks: dict[str, Any] = {"parity": parity, "val_auroc_fp32": binary_auroc(labels >= 0.5, fp32)}
    chosen = fp32
    if cfg.int8:
        int8 = Router.load(out, variant="int8").score(prompts)
        checks["int8"] = int8_drift(fp32, int8, labels, cfg.int8_auroc_tolerance)
        if checks["int8"]["accepted"]:
            manifest["onnx"]["default_variant"] = "int8"
            chosen = int8
    manifest["metrics"]["export"] = checks
    manifest["threshold"] = _threshold(cfg.threshold, chosen, labels)
    _write(out, manifest)
    return manifest


def _read_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any], Any]:
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise ArtifactError(f"{run_dir} is not a complete training run: missing "
                            f"{', '.join(missing)}. Make one with "
                            f"`confroute train --out {run_dir}`")
    import pandas as pd

    metrics = json.loads((run_dir / "metrics.json").read_text())
    return load_yaml(RunConfig, run_dir / "config.yaml"), metrics, pd.read_parquet(
        run_dir / "val.parquet")


class _LogitGraph(torch.nn.Module):
    """Fixes the positional input order of the exported graph to the model's input names."""

    def __init__(self, model: RouterModel):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.model.input_names, inputs, strict=True)))


def export_onnx(model: RouterModel, path: Path, opset: int) -> None:
    names = list(model.input_names)
    example = model.text_encoder()(["an example prompt for tracing", "a second one"])
    args = tuple(torch.from_numpy(example[n]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logit": {0: "batch"}}
    with torch.no_grad(), _eager_attention(model.encoder):
        torch.onnx.export(_LogitGraph(model).eval(), args, str(path), input_names=names,
                          output_names=["logit"], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)


@contextlib.contextmanager
def _eager_attention(encoder: torch.nn.Module) -> Iterator[None]:
    """Trace the plain-matmul attention rather than SDPA. SDPA's traced graph carries a NaN
    guard and mask arithmetic per layer (IsNaN / Where nodes) that onnxruntime cannot fold
    away, while eager attention traces to MatMul / Softmax that its fusions recognise. Same
    weights and outputs; the parity check holds either way."""
    current = getattr(getattr(encoder, "config", None), "_attn_implementation", None)
    setter = getattr(encoder, "set_attn_implementation", None)
    if current in (None, "eager") or setter is None:
        yield
        return
    setter("eager")
    try:
        yield
    finally:
        setter(current)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 with per-channel weights (per-tensor distorts MiniLM noticeably)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(dst), per_channel=True, weight_type=QuantType.QInt8)


def check_parity(model: RouterModel, router: Router, prompts: list[str], tolerance: float
                 ) -> dict[str, Any]:
    """torch vs ONNX fp32 logits on real prompts; raises with the max difference if too far."""
    encoded = model.text_encoder()(prompts)
    with torch.no_grad():
        torch_logits = model(**{k: torch.from_numpy(v) for k, v in encoded.items()}).numpy()
    onnx_logits = router.logits(prompts)
    diff = float(np.max(np.abs(torch_logits - onnx_logits)))
    if not diff <= tolerance:
        raise ArtifactError(f"ONNX export does not match torch: max |logit diff| {diff:.3g} over "
                            f"{len(prompts)} prompts exceeds {tolerance:g}")
    return {"max_abs_logit_diff": diff, "prompts": len(prompts), "tolerance": tolerance}


def int8_drift(fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, tolerance: float
               ) -> dict[str, Any]:
    positive = labels >= 0.5
    auroc32, auroc8 = binary_auroc(positive, fp32), binary_auroc(positive, int8)
    delta = np.abs(fp32 - int8)
    return {"val_auroc_int8": auroc8, "auroc_change": auroc8 - auroc32,
            "max_abs_score_diff": float(delta.max()), "mean_abs_score_diff": float(delta.mean()),
            "prompts": len(labels), "accepted": bool(abs(auroc8 - auroc32) <= tolerance)}


def _threshold(given: float | None, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    if given is not None:
        return {"default": given, "source": "set at export"}
    share = float(np.mean(labels >= 0.5))
    value = float(np.quantile(scores, 1 - share)) if share > 0 else float(np.max(scores))
    return {"default": value, "source": "validation cloud-label share", "cloud_fraction": share}


def _manifest(model: RouterModel, run_cfg: RunConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    report = metrics.get("data_report", {})
    return {
        "format_version": FORMAT_VERSION,
        "confroute_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "base_encoder": {"name": run_cfg.model.encoder, **encoders.describe(model.encoder,
                                                                            model.cfg),
                         "head": model.cfg.head, "freeze_encoder": model.cfg.freeze_encoder},
        "preprocess": {"turn": run_cfg.data.turn, "max_length": run_cfg.model.max_length,
                       "truncation_side": run_cfg.model.truncation_side,
                       "pooling": run_cfg.model.pooling, "tokenizer": "tokenizer.json"},
        "onnx": {"inputs": list(model.input_names), "output": "logit", "score": "sigmoid(logit)",
                 "variants": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
                 "default_variant": "fp32"},
        "threshold": {"default": 0.5, "source": "placeholder until checks ran"},
        "label_rule": {"rule": report.get("label_rule"), "params": report.get("label_params")},
        "training_data": {"source": report.get("source"), "fingerprint":
                          metrics.get("data_fingerprint"), "rows": report.get("rows")},
        "metrics": {"val": {k: v for k, v in metrics.items() if k.startswith("val_")}},
    }


def _write(out: Path, manifest: dict[str, Any]) -> None:
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
