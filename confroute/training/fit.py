"""Training: a thin LightningModule around RouterModel, and `fit(config) -> run directory`.

Run directory layout:
  config.yaml         the exact RunConfig (feed it back with `confroute train --config`)
  model/              the best RouterModel (by validation AUROC), see RouterModel.save
  val.parquet         the validation prompts and labels (export checks int8 drift on them)
  metrics.json        best validation metrics, data report, training-data fingerprint, timing
  checkpoints/        Lightning checkpoints; logs/ CSV logs per step and epoch
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics
from torch import nn

from confroute import arguments as check
from confroute import quiet
from confroute.config import RunConfig, TrainConfig
from confroute.dataset import schema
from confroute.errors import ConfigError
from confroute.training.datamodule import RouterDataModule
from confroute.training.interrupts import Interrupts
from confroute.training.model import RouterModel
from confroute.training.run_files import FitResult, ladder_facts, prior_report, write_run

Metric = Literal["val_auroc", "val_ap", "val_brier", "val_ece", "val_loss"]
"""The validation metrics RouterTask logs, declared once: `BestMetrics` keeps them, `confroute
tune` optimises one (its `metric` setting is typed by this, so the CLI's choices follow)."""
METRICS: tuple[str, ...] = typing.get_args(Metric)
MAXIMISED = frozenset({"val_auroc", "val_ap"})
"""Higher is better for these; lower for the rest (Brier score, ECE, BCE loss)."""


class RouterTask(pl.LightningModule):
    """BCE on soft labels; AdamW with linear warm-up and decay; metrics as torchmetrics.

    For K models the loss is the mean BCE over every (prompt, model) target, and val_auroc /
    val_ap are the macro averages over the K heads (torchmetrics' multilabel metrics); ECE and
    Brier score pool every (prompt, model) probability. With auxiliary models the training loss
    adds `cfg.auxiliary_weight` x their mean BCE over the known targets (`routing_loss`);
    validation scores the routed models only.
    """

    def __init__(self, model: RouterModel, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.schedule_steps = 0  # set by configure_optimizers, reported in metrics.json
        self.loss = nn.BCEWithLogitsLoss()
        k = len(model.models)
        self.routed = k or 1
        classification = torchmetrics.classification
        self.val_metrics = torchmetrics.MetricCollection({
            "auroc": DefinedMacroAUROC(k) if k else classification.BinaryAUROC(),
            "ap": (classification.MultilabelAveragePrecision(k) if k
                   else classification.BinaryAveragePrecision()),
        }, prefix="val_")
        self.val_ece = classification.BinaryCalibrationError(n_bins=10)
        self.val_brier = torchmetrics.MeanSquaredError()

    def on_fit_start(self) -> None:
        # transformers returns models in eval mode and Lightning keeps submodule modes.
        self.model.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in self.model.input_names}
        return self.model(**inputs)

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        if self.model.auxiliary:
            logits = self.model.all_logits(*(batch[k] for k in self.model.input_names))
            loss = routing_loss(logits, batch["labels"], self.routed, self.cfg.auxiliary_weight)
        else:
            loss = self.loss(self(batch), batch["labels"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        logits, labels = self(batch), batch["labels"]
        if self.model.auxiliary:
            labels = labels[:, :self.routed].contiguous()
        probs = torch.sigmoid(logits)
        # AUROC/AP/ECE need binary targets: a soft label >= 0.5 counts as positive.
        self.val_metrics.update(probs, (labels >= 0.5).long())
        self.val_ece.update(probs.reshape(-1), (labels >= 0.5).long().reshape(-1))
        self.val_brier.update(probs, labels)
        self.log("val_loss", self.loss(logits, labels), batch_size=len(labels), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)
        self.log("val_ece", self.val_ece.compute(), prog_bar=True, sync_dist=True)
        self.log("val_brier", self.val_brier.compute(), sync_dist=True)
        self.val_metrics.reset()
        self.val_ece.reset()
        self.val_brier.reset()

    def configure_optimizers(self) -> Any:
        head_lr = self.cfg.head_learning_rate or self.cfg.learning_rate
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            lr = head_lr if name.startswith("head.") else self.cfg.learning_rate
            no_decay = param.ndim < 2  # biases and norms
            groups.setdefault((lr, 0.0 if no_decay else self.cfg.weight_decay), []).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()])
        # Lightning counts the steps of this run as launched: batches per epoch on this rank
        # (after the DistributedSampler's split across every device and node), epochs, max_steps.
        self.schedule_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = linear_schedule(optimizer, self.schedule_steps, self.cfg.warmup_ratio)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def routing_loss(logits: torch.Tensor, targets: torch.Tensor, routed: int,
                 auxiliary_weight: float) -> torch.Tensor:
    """Mean BCE over the routed models' targets (the first `routed` columns) + `auxiliary_weight`
    x mean BCE over the auxiliary models' known targets (NaN = unknown, left out).

    `logits`, `targets`: [batch, models], targets in [0, 1] or NaN (auxiliary columns only).
    """
    known = ~torch.isnan(targets)
    losses = nn.functional.binary_cross_entropy_with_logits(
        logits, torch.where(known, targets, torch.zeros_like(targets)), reduction="none")
    aux, aux_known = losses[:, routed:], known[:, routed:]
    aux_loss = (aux * aux_known).sum() / aux_known.sum().clamp(min=1)
    return losses[:, :routed].mean() + auxiliary_weight * aux_loss


class DefinedMacroAUROC(torchmetrics.classification.MultilabelAUROC):
    """Macro AUROC over the labels (models) whose targets hold both classes; NaN when none
    does. A label with one class has no AUROC, and torchmetrics' macro average counts it as 0,
    which would pull the K-head val_auroc down for a model the validation split cannot judge."""

    def __init__(self, num_labels: int):
        super().__init__(num_labels, average=None)

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        per_label = super().compute()
        target = torchmetrics.utilities.dim_zero_cat(self.target)
        positives = (target == 1).sum(0)
        defined = (positives > 0) & (positives < target.shape[0])
        return per_label[defined].mean() if defined.any() else torch.tensor(float("nan"))


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `int(total_steps * warmup_ratio)` optimiser steps from 0 to each group's
    learning rate, then linear decay to 0 at `total_steps` (transformers'
    `get_linear_schedule_with_warmup`, the BERT fine-tuning schedule of Devlin et al. 2019).

    The multiplier at step k (counted from 0) is k / warmup during warm-up, so the first step's
    rate is 0, and (total - k) / (total - warmup) after it. Stepped once per optimiser step.
    """
    from transformers import get_linear_schedule_with_warmup

    warmup = int(total_steps * warmup_ratio)
    return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def fit(cfg: RunConfig, out_dir: str | Path, callbacks: Sequence[pl.Callback] = (),
        data: schema.LabelledPrompts | None = None) -> FitResult:
    """Train a router on `cfg` and write the run directory; returns its best metrics."""
    check.instance(cfg, "cfg", RunConfig, "a confroute.config.RunConfig")
    out = check.path(out_dir, "out_dir", ConfigError, kind="out")
    check.instance(data, "data", schema.LabelledPrompts, "confroute.dataset.schema's "
                   "LabelledPrompts", optional=True)
    started = time.time()
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    quiet.lightning()
    data = data or schema.load(cfg.data)
    if cfg.train.adapt_from:  # fit new models' parameters on a trained router instead
        from confroute.training.adapt import adapt_run

        return adapt_run(cfg, out, data)
    train, val = data.split("train"), data.split("val")
    columns = data.target_columns
    if cfg.train.shuffle_labels:  # rows of targets move together, so each row stays plausible
        order = np.random.default_rng(cfg.train.seed + 1).permutation(len(train))
        train = train.assign(**{c: train[c].to_numpy()[order] for c in [*columns, "label"]})
    model = RouterModel(cfg.model, models=data.models, auxiliary=data.auxiliary)
    model.freeze_lower(cfg.train.freeze_layers)
    _freeze_unused(model)
    dm = RouterDataModule(train, val, model.text_encoder(), cfg.train.batch_size,
                          cfg.train.num_workers, cfg.train.bucket_by_length, cfg.train.seed,
                          columns)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="best",
                                              monitor="val_auroc", mode="max", save_top_k=1,
                                              save_weights_only=True)
    stopper = pl.callbacks.EarlyStopping(monitor="val_auroc", mode="max",
                                         patience=cfg.train.patience)
    best, counter = BestMetrics(), TrainingCounter()
    interrupts = Interrupts()  # a Ctrl-C is never lost in a finalizer (see interrupts.py)
    trainer = pl.Trainer(
        max_epochs=cfg.train.max_epochs, max_steps=cfg.train.max_steps,
        val_check_interval=cfg.train.val_check_interval,
        callbacks=[checkpoint, stopper, *callbacks, best, counter, interrupts.callback()],
        default_root_dir=out, logger=pl.loggers.CSVLogger(out, name="logs"),
        num_sanity_val_steps=0, **dataclasses.asdict(cfg.train.trainer))
    # The interval depends on the batches per epoch of each rank, so on the world size, which
    # only the Trainer resolves (devices "auto", "0,1", or N; several nodes); Lightning reads it
    # when fit sets up the data.
    trainer.val_check_interval = validation_interval(cfg.train, len(train), trainer.world_size)
    task = RouterTask(model, cfg.train)
    with interrupts:
        trainer.fit(task, dm)
    if checkpoint.best_model_path:
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
        task.load_state_dict(state["state_dict"])
    result = {**best.metrics, **counter.metrics, "global_steps": trainer.global_step,
              "schedule_steps": task.schedule_steps,
              "final_learning_rate": trainer.optimizers[0].param_groups[0]["lr"],
              "train_rows": len(train), "val_rows": len(val), "train_seconds":
              round(time.time() - started, 1), "shuffled_labels": cfg.train.shuffle_labels,
              "data_fingerprint": data.fingerprint("train"), "data_report": data.report,
              # the per-source prior on the same rows: does the router beat knowing the source?
              "val_prior": prior_report(data, val)}
    if data.models:
        result["ladder"] = ladder_facts(data)
    if trainer.is_global_zero:
        write_run(out, cfg, model.eval(), val, result)
    return FitResult(out, result, trainer.is_global_zero)


class BestMetrics(pl.Callback):
    """Keeps every validation metric from the validation with the best AUROC (the checkpoint's)."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def on_validation_end(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
        logged = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items()
                  if k in METRICS}
        if "val_auroc" in logged and logged["val_auroc"] >= self.metrics.get("val_auroc", -1.0):
            self.metrics = {**logged, "best_step": trainer.global_step}


class TrainingCounter(pl.Callback):
    """Training examples each rank saw, and examples/s of training alone (validation excluded).

    `examples_per_rank` shows that every DDP process trained on its own share of the data.
    """

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}
        self.examples = 0
        self.started = self.val_started = self.val_seconds = 0.0

    def on_train_start(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, _: pl.LightningModule, outputs: Any,
                           batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.examples += len(batch["labels"])

    def on_validation_start(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
        self.val_started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
        self.val_seconds += time.perf_counter() - self.val_started

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self.started - self.val_seconds
        # A collective call: every rank reaches on_train_end, so none waits forever.
        gathered = module.all_gather(torch.tensor(self.examples))
        per_rank = torch.as_tensor(gathered).reshape(-1).tolist()
        self.metrics = {"world_size": trainer.world_size, "examples_per_rank": per_rank,
                        "train_examples_per_s": round(sum(per_rank) / max(seconds, 1e-9), 2),
                        "validation_seconds": round(self.val_seconds, 1)}


def _freeze_unused(model: RouterModel) -> None:
    """Freeze the encoder's own pooler (e.g. BERT's [CLS] dense layer): RouterModel pools the last
    hidden states itself, so the pooler never gets a gradient, which DDP rejects as an error."""
    pooler = getattr(model.encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        for param in pooler.parameters():
            param.requires_grad = False


def validation_interval(cfg: TrainConfig, n_train: int, world_size: int) -> float | int:
    """How often to validate: `cfg.val_check_interval`, or the last step of a run that ends
    inside its first epoch.

    `n_train` rows are split over `world_size` processes (DistributedSampler, rounded up) into
    batches of `cfg.batch_size`. Raises ConfigError when an interval in batches exceeds an epoch.
    """
    per_epoch = max(1, math.ceil(math.ceil(n_train / world_size) / cfg.batch_size))
    interval = cfg.val_check_interval
    if cfg.max_steps > 0 and cfg.max_steps < per_epoch and interval == 1.0:
        # A short run ends inside the first epoch: validate when it ends.
        interval = cfg.max_steps
    if isinstance(interval, int) and interval > per_epoch:
        raise ConfigError(f"train.val_check_interval={interval} batches is more than one epoch "
                          f"({per_epoch} batches)")
    return interval
