"""What a training run leaves (its run directory) and reports: the files `confroute export`
reads, the prior beside the router's validation figures, the K-model facts of metrics.json.
Shared by a full fit (training/fit.py) and an adapted one (training/adapt.py).

Run directory: config.yaml, model/ (RouterModel.save), val.parquet (the validation rows and
their targets), metrics.json (written last: it marks the run complete).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from confroute.config import RunConfig, dump_yaml
from confroute.dataset import schema
from confroute.dataset.prior import validation_prior
from confroute.files import replacing, write_json
from confroute.training.model import RouterModel


@dataclasses.dataclass
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]
    is_global_zero: bool = True
    """False in the other processes of a distributed run (they neither write nor report)."""


def ladder_facts(data: schema.LabelledPrompts) -> dict[str, Any]:
    """metrics.json's `ladder`: the routed models, their prices, output tokens, auxiliaries."""
    return {"models": data.models, "prices": data.prices,
            "output_tokens": data.report.get("output_tokens", 0.0),
            **({"auxiliary": data.auxiliary} if data.auxiliary else {})}


def prior_report(data: schema.LabelledPrompts, val: Any) -> dict[str, Any]:
    """The per-source prior's validation AUROC: for K models, one prior per model's targets
    (P(adequate)), and their mean, as the router's macro val_auroc."""
    train = data.split("train")
    if not data.models:
        return validation_prior(train, val)
    per_model = {}
    for model, column in zip(data.models, data.label_columns, strict=True):
        per_model[model] = validation_prior(train.assign(label=train[column]),
                                            val.assign(label=val[column]))["val_auroc"]
    known = [v for v in per_model.values() if v is not None]
    return {"group_column": "source", "per_model": per_model,
            "val_auroc": round(float(np.mean(known)), 4) if known else None}


def write_run(out: Path, cfg: RunConfig, model: RouterModel, val: Any,
              result: dict[str, Any]) -> None:
    """The run directory's files (module docstring); metrics.json last, marking it complete."""
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out / "config.yaml")
    model.save(out / "model")
    columns = [c for c in val.columns if c in ("id", "prompt", "label")
               or c.startswith(schema.TARGET)]
    with replacing(out / "val.parquet") as tmp:
        val[columns].assign(id=val["id"].astype(str)).to_parquet(tmp, index=False)
    write_json(out / "metrics.json", result, default=str)  # last: it marks the run complete
