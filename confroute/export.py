"""Export a run directory to a self-describing ONNX router artifact, checked against torch.

Artifact directory:
  model.onnx          fp32, inputs per manifest, output `logit` [batch]; score = sigmoid(logit)
                      (a router for K models: `logit` [batch, K], P(model k adequate))
  model.int8.onnx     static int8 (QDQ, calibrated on the validation prompts), optional
  tokenizer.json      the tokenizer the runtime uses (tokenizers library, no transformers)
  router.json         manifest: format, encoder, preprocessing, routing (models, prices when
                      known, how the heads map to them, the rule and its parameters), label
                      rule, data fingerprint, metrics (validation, parity, int8 drift), sha256
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confroute import __version__, quiet
from confroute import arguments as check
from confroute.artifact import FORMAT_VERSION, MANIFEST, sha256_file, write_manifest
from confroute.calibration import calibrate_lambda, calibrate_shares
from confroute.config import ExportConfig, RunConfig, load_yaml
from confroute.dataset.ratings import Price, estimate_tokens, parse_prices
from confroute.dataset.schema import numeric_column, target_column
from confroute.errors import ArtifactError, ConfrouteError
from confroute.quantize import calibration_feeds, quantize_int8
from confroute.runtime import Router
from confroute.stats import binary_auroc
from confroute.training import encoders
from confroute.training.model import RouterModel

RUN_FILES = ("config.yaml", "metrics.json", "val.parquet", "model/router_model.json",
             "model/model.safetensors", "model/tokenizer.json")


def export(run_dir: str | Path, out_dir: str | Path, cfg: ExportConfig | None = None
           ) -> dict[str, Any]:
    """Write the artifact for `run_dir` into `out_dir` and return its manifest.

    The artifact is built and checked (parity, int8 drift) in a staging folder beside
    `out_dir`; only then are its files moved in, the manifest last, so a failed export (or a
    full disk) leaves an existing artifact in `out_dir` as it was.

    Raises:
        ArtifactError: the run directory is incomplete or damaged, or a check fails.
    """
    run_dir = check.path(run_dir, "run_dir", ArtifactError, kind="folder",
                         fix="give the folder `confroute train` wrote")
    out = check.path(out_dir, "out_dir", ArtifactError, kind="out")
    cfg = check.instance(cfg, "cfg", ExportConfig, "a confroute.config.ExportConfig",
                         optional=True) or ExportConfig()
    run = _read_run(run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.export-") as tmp:
        stage = Path(tmp)
        manifest = _build(stage, run_dir, run, cfg)
        out.mkdir(exist_ok=True)
        for name in [*manifest["files"], MANIFEST]:  # the manifest last: it names the files
            os.replace(stage / name, out / name)
    return manifest


def _build(stage: Path, run_dir: Path, run: tuple[RunConfig, dict[str, Any], Any, RouterModel],
           cfg: ExportConfig) -> dict[str, Any]:
    """Write and check the artifact files and manifest in `stage`."""
    run_cfg, metrics, val, model = run
    export_onnx(model, stage / "model.onnx", cfg.opset)
    shutil.copyfile(run_dir / "model" / "tokenizer.json", stage / "tokenizer.json")
    manifest = _manifest(model, run_cfg, metrics, cfg)
    files = ["model.onnx", "tokenizer.json"]
    prompts = val["prompt"].tolist()
    columns = [target_column(m) for m in model.models] or ["label"]
    labels = val[columns].to_numpy(dtype=float)
    labels = labels[:, 0] if not model.models else labels
    if cfg.int8:
        quantize_int8(stage / "model.onnx", stage / "model.int8.onnx",
                      calibration_feeds(model, prompts))
        files.append("model.int8.onnx")
    manifest["files"] = {name: sha256_file(stage / name) for name in files}
    write_manifest(stage, manifest)

    fp32_router = Router.load(stage, variant="fp32")
    parity = check_parity(model, fp32_router, prompts[: cfg.parity_prompts], cfg.parity_tolerance)
    fp32 = _probabilities(fp32_router, prompts)
    checks: dict[str, Any] = {"parity": parity, "val_auroc_fp32": macro_auroc(labels, fp32)}
    chosen = fp32
    if cfg.int8:
        int8 = _probabilities(Router.load(stage, variant="int8"), prompts)
        checks["int8"] = int8_drift(fp32, int8, labels, cfg.int8_auroc_tolerance)
        if checks["int8"]["accepted"]:
            manifest["onnx"]["default_variant"] = "int8"
            chosen = int8
    manifest["metrics"]["export"] = checks
    if model.models:
        if cfg.prices is not None:
            raise ArtifactError(f"export.prices is for a pair trained on a label; this run's "
                                f"{len(model.models)} models were priced at training "
                                "(data.prices): leave it unset")
        if cfg.threshold is not None:
            raise ArtifactError("export.threshold is one threshold for two models; this run "
                                f"routes among {len(model.models)}: leave it unset and calibrate "
                                "with `confroute calibrate ARTIFACT --target_cost USD --write`")
        manifest["routing"] = _ladder(model.models, metrics, chosen, labels, cfg.ladder_rule,
                                      prompts, fp32_router.input_tokens)
    else:
        manifest["routing"] = _pair(cfg, chosen, labels)
    write_manifest(stage, manifest)
    return manifest


def _probabilities(router: Router, prompts: list[str]) -> np.ndarray:
    """P(cloud needed) [n] for a pair trained on that label, else P(model k adequate) [n, K]."""
    return router.score(prompts) if router.heads == "cloud_needed" else router.adequacy(prompts)


def macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary AUROC of `scores` for `labels >= 0.5`, both [n]; for [n, K] the mean over the
    columns that hold both classes (as the training's macro val_auroc); NaN when none does."""
    if labels.ndim == 1:
        return binary_auroc(labels >= 0.5, scores)
    values = [binary_auroc(labels[:, k] >= 0.5, scores[:, k]) for k in range(labels.shape[1])]
    known = [v for v in values if not np.isnan(v)]
    return float(np.mean(known)) if known else float("nan")


def _ladder(models: list[str], metrics: dict[str, Any], probs: np.ndarray | None = None,
            targets: np.ndarray | None = None, rule: str = "threshold",
            prompts: Sequence[str] = (),
            count: Callable[[list[str]], np.ndarray] = estimate_tokens) -> dict[str, Any]:
    """The manifest's `routing` for a run with one head per model: models with prices, the rule,
    and its parameters calibrated on
    the validation prompts to the K-model analogue of the two-model default: thresholds that send
    each model the share of prompts whose cheapest adequate model it is (the top model when none
    is), and the lambda whose mean cost equals that assignment's. Placeholders (0.5 each, lambda
    0) until `probs` [n, K] and `targets` [n, K] are given. `count` gives input tokens as the
    runtime's `Router.costs` counts them, so lambda is calibrated on the costs it will see."""
    ladder = metrics.get("ladder") or {}
    prices = ladder.get("prices") or {}
    missing = [m for m in models if m not in prices]
    if missing:
        raise ArtifactError(f"the run has no price for model(s) {', '.join(missing)}; retrain "
                            "with data.prices naming every model in data.models")
    out = {"models": [{"name": m, **prices[m]} for m in models], "heads": "adequacy",
           "thresholds": [0.5] * len(models),
           "output_tokens": float(ladder.get("output_tokens") or 0.0),
           "source": {"source": "placeholder until checks ran"}}
    if probs is None or targets is None:
        return out
    adequate = targets >= 0.5
    first = np.where(adequate.any(axis=1), adequate.argmax(axis=1), len(models) - 1)
    shares = np.bincount(first, minlength=len(models)) / len(first)
    thresholds = np.minimum(calibrate_shares(probs, shares.tolist()), 1.0)
    out["thresholds"] = [float(t) for t in thresholds]
    source: dict[str, Any] = {"source": "validation shares of the cheapest adequate model",
                              "shares": dict(zip(models, shares.round(4).tolist(),
                                                 strict=True))}
    if rule == "utility":
        tokens_in = count(list(prompts))
        tokens_out = np.full(len(tokens_in), out["output_tokens"])
        costs = np.stack([Price(**prices[m]).cost(tokens_in, tokens_out) for m in models],
                         axis=1)
        target = float(costs[np.arange(len(first)), first].mean())
        out["lambda_per_usd"] = calibrate_lambda(probs, costs, target)
        source = {"source": "validation cost of the cheapest adequate model", "target_cost":
                  target, "shares": source["shares"]}
    out["rule"] = rule
    out["source"] = source
    return out


def _read_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any], Any, RouterModel]:
    """The run's config, metrics, validation rows and model; a damaged file is named."""
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        rebuild = _rebuild(run_dir, "config.yaml" not in missing)
        raise ArtifactError(f"{run_dir} is not a complete training run: missing "
                            f"{', '.join(missing)}. {rebuild}")
    import pandas as pd

    def damaged(name: str, exc: Exception) -> ArtifactError:
        detail = " ".join(str(exc).split())[:200]  # one line, as the CLI prints it
        return ArtifactError(f"{run_dir / name} is damaged ({type(exc).__name__}: {detail}); "
                             f"{_rebuild(run_dir, name != 'config.yaml')}")

    try:
        run_cfg = load_yaml(RunConfig, run_dir / "config.yaml")
    except ConfrouteError as exc:
        raise damaged("config.yaml", exc) from exc
    try:
        metrics = json.loads((run_dir / "metrics.json").read_bytes())
        if not isinstance(metrics, dict):
            raise ValueError(f"a JSON object is expected, found {type(metrics).__name__}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged("metrics.json", exc) from exc
    try:
        val = pd.read_parquet(run_dir / "val.parquet")
        absent = {"prompt", "label"} - set(val.columns)
        if absent or len(val) == 0:
            raise ValueError(f"needs rows with 'prompt' and 'label'; lacks {sorted(absent)}")
        val["label"] = numeric_column(val, "label", "val.parquet")
    except Exception as exc:  # pyarrow raises its own types for a file that is not parquet
        raise damaged("val.parquet", exc) from exc
    try:
        model = RouterModel.load(run_dir / "model")
    except Exception as exc:  # safetensors, transformers and json each raise their own types
        raise damaged("model/", exc) from exc
    return run_cfg, metrics, val, model


def _rebuild(run_dir: Path, config_intact: bool = True) -> str:
    """The command that rebuilds `run_dir`, with its own settings when they can be read."""
    settings = f"--config {run_dir / 'config.yaml'} " if config_intact else ""
    return (f"rebuild the run with `confroute train {settings}--out {run_dir} --overwrite`"
            + ("" if config_intact else " and the settings it was trained with"))


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
    with torch.no_grad(), _eager_attention(model.encoder), quiet.onnx_tracing():
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


def check_parity(model: RouterModel, router: Router, prompts: list[str], tolerance: float
                 ) -> dict[str, Any]:
    """torch vs ONNX fp32 logits on real prompts; raises with the max difference if too far."""
    encoded = model.text_encoder()(prompts)
    with torch.no_grad():
        torch_logits = model(**{k: torch.from_numpy(v) for k, v in encoded.items()}).numpy()
    onnx_logits = router.logits(prompts)
    if torch_logits.shape != onnx_logits.shape:
        raise ArtifactError(f"ONNX export does not match torch: logits of shape "
                            f"{onnx_logits.shape}, torch {torch_logits.shape}")
    diff = float(np.max(np.abs(torch_logits - onnx_logits)))
    if not diff <= tolerance:
        raise ArtifactError(f"ONNX export does not match torch: max |logit diff| {diff:.3g} over "
                            f"{len(prompts)} prompts exceeds {tolerance:g}")
    return {"max_abs_logit_diff": diff, "prompts": len(prompts), "tolerance": tolerance}


def int8_drift(fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray, tolerance: float
               ) -> dict[str, Any]:
    """int8 vs fp32 probabilities ([n], or [n, K] with macro AUROC) on the validation split."""
    auroc32, auroc8 = macro_auroc(labels, fp32), macro_auroc(labels, int8)
    delta = np.abs(fp32 - int8)
    return {"val_auroc_int8": auroc8, "auroc_change": auroc8 - auroc32,
            "max_abs_score_diff": float(delta.max()), "mean_abs_score_diff": float(delta.mean()),
            "prompts": len(labels), "accepted": bool(abs(auroc8 - auroc32) <= tolerance)}


def _pair(cfg: ExportConfig, scores: np.ndarray | None = None,
          labels: np.ndarray | None = None) -> dict[str, Any]:
    """The manifest's `routing` for a pair trained on a "cloud needed" label: its one head gives
    P(cloud needed); the threshold is `cfg.threshold`, else the score quantile that sends the
    validation split's share of cloud labels to the cloud (a placeholder until `scores` [n] and
    `labels` [n] are given). The models are edge and cloud, or those priced in `cfg.prices`."""
    source: dict[str, Any]
    if cfg.threshold is not None:
        value, source = cfg.threshold, {"source": "set at export"}
    elif scores is None or labels is None:
        value, source = 0.5, {"source": "placeholder until checks ran"}
    else:
        share = float(np.mean(labels >= 0.5))
        value = float(np.quantile(scores, 1 - share)) if share > 0 else float(np.max(scores))
        source = {"source": "validation cloud-label share", "cloud_fraction": share}
    return {"models": _pair_models(cfg.prices), "heads": "cloud_needed", "rule": "threshold",
            "threshold": value, "thresholds": [1.0 - value, 0.0], "source": source}


def _pair_models(prices: str | None) -> list[dict[str, Any]]:
    """[{name}, ...] of the pair: edge and cloud, or the two models of a price file, cheapest
    (input + output price) first, with their prices."""
    if prices is None:
        return [{"name": "edge"}, {"name": "cloud"}]
    found = parse_prices(prices)
    if len(found) != 2:
        raise ArtifactError(f"export.prices {prices} prices {len(found)} model(s); a pair has "
                            "two: the edge (cheaper) and the cloud model")
    ordered = sorted(found.items(), key=lambda item: item[1].input_per_mtok
                     + item[1].output_per_mtok)
    return [{"name": name, "input_per_mtok": p.input_per_mtok,
             "output_per_mtok": p.output_per_mtok} for name, p in ordered]


def _manifest(model: RouterModel, run_cfg: RunConfig, metrics: dict[str, Any],
              cfg: ExportConfig) -> dict[str, Any]:
    report = metrics.get("data_report", {})
    return {
        "format_version": FORMAT_VERSION,
        "confroute_version": __version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "base_encoder": {"name": run_cfg.model.encoder, **encoders.describe(model.encoder,
                                                                            model.cfg),
                         "head": model.cfg.head, "freeze_encoder": model.cfg.freeze_encoder,
                         "max_positions": position_limit(getattr(model.encoder, "config", None))},
        "preprocess": {"turn": run_cfg.data.turn, "max_length": run_cfg.model.max_length,
                       "truncation_side": run_cfg.model.truncation_side,
                       "pooling": run_cfg.model.pooling, "tokenizer": "tokenizer.json"},
        "onnx": {"inputs": list(model.input_names), "output": "logit", "score": "sigmoid(logit)",
                 "variants": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
                 "default_variant": "fp32"},
        "routing": _ladder(model.models, metrics) if model.models else _pair(cfg),
        "label_rule": {"rule": report.get("label_rule"), "params": report.get("label_params")},
        "training_data": {"source": report.get("source"), "fingerprint":
                          metrics.get("data_fingerprint"), "rows": report.get("rows")},
        "metrics": {"val": {k: v for k, v in metrics.items() if k.startswith("val_")}},
    }


def position_limit(config: Any) -> int | None:
    """Longest input the encoder's learned position embeddings hold (None when unbounded).

    RoBERTa-style models offset positions by `pad_token_id + 1` (transformers'
    `create_position_ids_from_input_ids`), so 514 embeddings hold 512 tokens.
    """
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return positions
