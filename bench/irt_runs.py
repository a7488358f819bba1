"""The routers bench/irt.py measures, trained with confroute's own `fit` (and `adapt`), cached.

A `Spec` names a router: the routed models, the auxiliary models whose outcomes are extra
supervision, the head form (`per_model` or `irt`) and which rows of the group's table it trains
on. Its table (the train and val rows only, never a test row; auxiliary columns NaN where an
outcome is missing) is written as a K-model ratings parquet with a price file and handed to
`confroute.training.fit.fit` under the `micro` preset (a model2vec static table distilled from
MiniLM and fine-tuned with the heads), as `confroute train --preset micro --data.source TABLE
--data.models [...] --data.auxiliary_models [...]` would. Runs are kept under the cache, keyed
by the settings and the exact rows and targets, so a rerun of the bench trains nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset.ratings import Ratings


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    models: tuple[str, ...]
    auxiliary: tuple[str, ...] = ()
    head_form: str = "per_model"
    irt_dims: int = 8
    auxiliary_weight: float = 1.0


@dataclasses.dataclass
class Settings:
    epochs: int | None = None
    """max_epochs (None: the micro preset's 5)."""
    seed: int = 0
    encoder: str = "minilm"
    cache: Path = Path("bench/.cache")


class Runs:
    """Trains (or reloads) each spec's RouterModel and keeps its training facts in `info`."""

    def __init__(self, settings: Settings, log: Callable[[str], None] = print) -> None:
        self.settings, self.log = settings, log
        self.info: list[dict[str, Any]] = []

    def model(self, spec: Spec, table: Ratings) -> Any:
        """The trained RouterModel of `spec` on `table`'s train/val rows (routed columns in the
        order of `spec.models` must be the table's models; auxiliary from its auxiliary)."""
        from confroute.training.model import RouterModel

        started = time.time()
        values = self._config(spec)
        folder = self.settings.cache / "irt" / _key(values, table)
        if not (folder / "run" / "metrics.json").is_file():
            self._fit(values, table, folder)
        metrics = json.loads((folder / "run" / "metrics.json").read_text())
        prior = (metrics.get("val_prior") or {}).get("val_auroc")
        info = {"router": spec.name, "models": list(spec.models),
                "auxiliary": len(spec.auxiliary), "head_form": spec.head_form,
                "train_rows": metrics["train_rows"], "val_rows": metrics["val_rows"],
                "best_step": metrics.get("best_step"), "global_steps": metrics.get("global_steps"),
                "val_auroc": metrics["val_auroc"], "val_prior_auroc": prior,
                "train_seconds": metrics["train_seconds"],
                "cached": time.time() - started < metrics["train_seconds"]}
        self.info.append(info)
        self.log(f"{spec.name} on {' -> '.join(spec.models)}: val AUROC "
                 f"{metrics['val_auroc']:.3f} (prior {prior}), {metrics['train_seconds']:.0f} s"
                 f"{' (cached)' if info['cached'] else ''}")
        return RouterModel.load(folder / "run" / "model")

    def _config(self, spec: Spec) -> dict[str, Any]:
        from confroute.training.presets import preset_overrides

        values: dict[str, Any] = preset_overrides("micro")
        values.update({"data.models": list(spec.models),
                       "data.auxiliary_models": list(spec.auxiliary),
                       "data.seed": self.settings.seed, "train.seed": self.settings.seed,
                       "model.head_form": spec.head_form, "model.irt_dims": spec.irt_dims,
                       "train.auxiliary_weight": spec.auxiliary_weight,
                       "train.trainer.accelerator": "cpu",
                       "train.trainer.enable_progress_bar": False})
        if self.settings.epochs is not None:
            values["train.max_epochs"] = self.settings.epochs
        return values

    def _fit(self, values: dict[str, Any], table: Ratings, folder: Path) -> None:
        import shutil

        from ladder_confroute import _quiet, static_encoder, write_table
        from pytorch_lightning.callbacks import ModelSummary

        from confroute.config import RunConfig, override
        from confroute.training.fit import fit

        source, prices = write_table(table, folder)
        encoder = static_encoder(self.settings.encoder, 256, self.settings.cache)
        cfg = override(RunConfig(), {**values, "data.source": str(source),
                                     "data.prices": str(prices), "model.encoder": str(encoder)})
        shutil.rmtree(folder / "run", ignore_errors=True)  # an interrupted earlier run
        with _quiet():
            fit(cfg, folder / "run", callbacks=[ModelSummary(max_depth=0)])


def adequacy(model: Any, prompts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """P(model k adequate) [n, K] of the routed models, from the torch RouterModel (fp32)."""
    import torch

    from confroute.text import prompt_text

    model.eval()
    encode = model.text_encoder()
    out = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            texts = [prompt_text(p) for p in prompts[start:start + batch_size]]
            batch = {k: torch.from_numpy(v) for k, v in encode(texts).items()}
            out.append(torch.sigmoid(model(**batch)).double().numpy())
    return np.concatenate(out)


def _key(values: dict[str, Any], table: Ratings) -> str:
    """sha256 of the settings and the train/val rows with their targets (16 hex digits)."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode())
    keep = np.flatnonzero(table.splits != "test")
    digest.update("|".join(f"{table.ids[i]}:{table.splits[i]}" for i in keep).encode())
    digest.update(np.ascontiguousarray(table.ratings[keep]).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(table.auxiliary_ratings)[keep]).tobytes())
    digest.update(json.dumps(table.auxiliary).encode())
    return digest.hexdigest()[:16]
