"""Route models a trained router never saw: keep its encoder and prompt head, fit only each new
model's own parameters on a few hundred labelled prompts (seconds on CPU).

Both head forms (heads.py) are linear in a model's own parameters phi_m over a design every
model shares, logit_m(x) = X(x) . phi_m + o(x). With the prompt side frozen, fitting a model is
a logistic regression of its outcomes on X(x) with offset o(x), under a Gaussian prior on phi_m
whose mean and per-coordinate variance are those of the trained models' parameters (the trained
models as a sample of the population of models, an empirical-Bayes prior; a model the router
was trained on keeps its own parameters as the prior mean). The MAP estimate, by L-BFGS:

    minimise  sum_i BCE(X_i . phi + o_i, y_i) + 1/2 sum_p (phi_p - mu_p)^2 / (scale * var_p)

This is how IRT scores a new test-taker once the items are calibrated: item parameters fixed,
ability by maximum a posteriori under a population prior (Baker & Kim, "Item Response Theory:
Parameter Estimation Techniques", 2nd ed. 2004, ch. 7). For an IRT head phi_m = [theta_m, c_m]
holds irt_dims + 1 numbers; for a per-model head it is a whole weight vector over the features.

`confroute train --train.adapt_from RUN_DIR ...` runs `adapt_run`: the new models are the
table's `data.models`, the result is a run directory like `confroute train` writes, so
`confroute export` makes it an artifact.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from confroute.config import RunConfig
from confroute.dataset import schema
from confroute.errors import ArtifactError, ConfigError
from confroute.stats import binary_auroc
from confroute.training import heads
from confroute.training.model import RouterModel


@torch.no_grad()
def prompt_design(model: RouterModel, prompts: Sequence[str], batch_size: int = 64
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(X [n, P], offset [n]) float64 of `prompts` under `model` in eval mode (heads.design)."""
    model.eval()
    encode = model.text_encoder()
    parts = []
    for start in range(0, len(prompts), batch_size):
        batch = {k: torch.from_numpy(v) for k, v in
                 encode(list(prompts[start:start + batch_size])).items()}
        features = model.embed(batch["input_ids"], batch["attention_mask"])
        parts.append(heads.design(model.head, features))
    return (torch.cat([p[0] for p in parts]).double(), torch.cat([p[1] for p in parts]).double())


def fit_parameters(x: torch.Tensor, offset: torch.Tensor, targets: np.ndarray,
                   prior_mean: torch.Tensor, prior_var: torch.Tensor, max_iter: int = 500
                   ) -> torch.Tensor:
    """MAP parameters phi [K', P] of K' models (module docstring).

    `x` [n, P] and `offset` [n] from `prompt_design`; `targets` [n, K'] in [0, 1] (NaN: unknown,
    left out); `prior_mean` [K', P]; `prior_var` [P] > 0 (already times the scale).
    """
    y = torch.as_tensor(np.asarray(targets, dtype=float), dtype=torch.float64)
    known = ~torch.isnan(y)
    y = torch.where(known, y, torch.zeros_like(y))
    mean = prior_mean.double()
    var = prior_var.double()
    phi = mean.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([phi], max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ phi.T + offset[:, None]
        nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss = (nll * known).sum() + 0.5 * ((phi - mean) ** 2 / var).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return phi.detach()


def adapt(model: RouterModel, prompts: Sequence[str], targets: np.ndarray,
          models: Sequence[str], prior_scale: float = 1.0) -> RouterModel:
    """A router for `models` (cheapest first) sharing `model`'s encoder and prompt head, their
    parameters fitted on `prompts` [n] and `targets` [n, len(models)] (P(model adequate) in
    [0, 1]). The trained models that are not among `models` stay as auxiliary outputs.

    `prior_scale` multiplies the prior's variance (larger: the labels count for more). Raises
    ConfigError when `model` routes no K models, a name repeats, or the shapes disagree.
    """
    models = list(models)
    targets = np.asarray(targets, dtype=float)
    if not model.models:
        raise ConfigError("train.adapt_from needs a router for K models (trained with "
                          "data.models); this one predicts one P(cloud needed)")
    if targets.shape != (len(prompts), len(models)) or len(prompts) == 0:
        raise ConfigError(f"adapting needs one target per prompt and model, "
                          f"({len(prompts)}, {len(models)}); found {targets.shape}")
    if not np.isfinite(prior_scale) or prior_scale <= 0:
        raise ConfigError(f"the prior scale must be a number > 0; found {prior_scale}")
    known = [*model.models, *model.auxiliary]
    trained = heads.model_parameters(model.head).double()
    var = trained.var(0, unbiased=True)
    var = (var + 1e-6 * var.mean().clamp(min=1e-12)) * prior_scale
    mean = torch.stack([trained[known.index(m)] if m in known else trained.mean(0)
                        for m in models])
    x, offset = prompt_design(model, prompts)
    phi = fit_parameters(x, offset, targets, mean, var)
    kept = [m for m in known if m not in models]
    rows = torch.cat([phi, trained[[known.index(m) for m in kept]]]).float()
    out = RouterModel(model.cfg, model.encoder, model.tokenizer, models, kept)
    out.head = heads.with_models(model.head, rows)
    return out.eval()


def adapt_run(cfg: RunConfig, out_dir: str | Path, data: schema.LabelledPrompts) -> Any:
    """`confroute train --train.adapt_from RUN_DIR`: adapt that run's router to `data.models` on
    `data`'s training rows, score its validation rows, write a run directory; a FitResult."""
    from confroute.training.run_files import FitResult, ladder_facts, prior_report, write_run

    started, out = time.time(), Path(out_dir)
    base_dir = Path(str(cfg.train.adapt_from))
    if not data.models or data.auxiliary:
        raise ConfigError("train.adapt_from fits the models of a K-model table: name them with "
                          "data.models (data.auxiliary_models is for training, not adapting)")
    if not (base_dir / "model").is_dir():
        raise ArtifactError(f"train.adapt_from: {base_dir} is not a run directory (no model/); "
                            "give the --out of a `confroute train` run with data.models")
    base = RouterModel.load(base_dir / "model")
    train, val = data.split("train"), data.split("val")
    router = adapt(base, train["prompt"].tolist(), train[data.label_columns].to_numpy(float),
                   data.models)
    run_cfg = dataclasses.replace(cfg, model=base.cfg)
    result = {**validation_metrics(router, val, data.label_columns), "train_rows": len(train),
              "val_rows": len(val), "train_seconds": round(time.time() - started, 1),
              "adapted_from": str(base_dir), "data_fingerprint": data.fingerprint("train"),
              "data_report": data.report, "val_prior": prior_report(data, val),
              "ladder": ladder_facts(data)}
    write_run(out, run_cfg, router, val, result)
    return FitResult(out, result)


@torch.no_grad()
def validation_metrics(model: RouterModel, val: Any, columns: Sequence[str]) -> dict[str, float]:
    """val_auroc (macro over the routed models whose targets hold both classes; NaN if none)
    and val_brier (pooled) of `model` on the frame `val`."""
    x, offset = prompt_design(model, val["prompt"].tolist())
    phi = heads.model_parameters(model.head).double()[:len(model.models)]
    probs = torch.sigmoid(x @ phi.T + offset[:, None]).numpy()
    targets = val[list(columns)].to_numpy(dtype=float)
    aurocs = [binary_auroc(targets[:, k] >= 0.5, probs[:, k]) for k in range(len(columns))]
    defined = [a for a in aurocs if np.isfinite(a)]
    return {"val_auroc": round(float(np.mean(defined)), 6) if defined else float("nan"),
            "val_brier": round(float(np.mean((probs - targets) ** 2)), 6)}
