"""The product router as a bench/ladders.py scorer: confroute's own K-head router, one per pair or
ladder, trained, exported and loaded exactly as a user would.

For each pair / ladder (K = 2 or 3 models):

1. Its table: `mmlu_pro.load` (the questions every model of the group answered) split by
   `mmlu_pro.split` with the bench's seed and test fraction, so its test questions are those
   every other scorer is evaluated on; `--confroute-val-fraction` of the questions (same hash: a
   slice of the training questions the other scorers train on) are held out for Lightning's
   early stopping and best checkpoint.
2. The train and val rows, never a test row, are written as a K-model ratings table (parquet:
   `id, prompt, category, split, tokens_in, tokens_out`, one 0/1 column per model) and a price
   YAML, what `confroute train --data.source TABLE --data.models [...] --data.prices YAML` reads.
3. `confroute.training.fit.fit` trains one encoder with K heads (Lightning), under a preset:
   `micro` (model2vec static table distilled from MiniLM and fine-tuned, linear heads; its 5
   epochs) or `default` (RunConfig's defaults: MiniLM's first layer, fine-tuned; 3 epochs).
4. `confroute.export.export` writes the artifact (ONNX fp32 + static int8), `Router.load` loads
   it with its default variant (a `Router`), and `.adequacy` scores the test prompts:
   P(model k correct) [n, K], fed to the same policies and metrics as the other scorers.

The static table is distilled once per source encoder and cached (the product distils it at
every `train`, with the same call and settings: confroute/training/encoders.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset.ratings import Ratings

PRESETS = ("micro", "default")


@dataclasses.dataclass
class Settings:
    """How the product routers are trained (see the module docstring)."""

    presets: list[str]
    encoder: str = "minilm"
    """The encoder the `micro` preset distils its static table from, and the `default` preset
    fine-tunes ('minilm' = the copy confroute ships)."""
    epochs: int | None = None
    """max_epochs; None: the preset's own."""
    max_steps: int = -1
    seed: int = 0
    cache: Path = Path("bench/.cache")
    keep_runs: Path | None = None
    """Keep each run and artifact under this folder (None: a temporary folder, removed)."""


class ProductRouters:
    """P(model correct) of confroute's K-head router for a group of models; each (preset, group)
    is trained on first use and kept. `tables(models)` gives the group's split `Ratings`."""

    def __init__(self, settings: Settings, tables: Callable[[tuple[str, ...]], Ratings],
                 log: Callable[[str], None] = print) -> None:
        self.settings, self.tables, self.log = settings, tables, log
        self.routers: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.info: list[dict[str, Any]] = []

    def adequacy(self, preset: str, models: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        """[len(ids), len(models)] P(model correct) for the questions `ids`, columns in the
        order of `models`."""
        group = tuple(models)
        key = (preset, group)
        table = self.tables(group)
        if key not in self.routers:
            self.routers[key] = self._train(preset, table)
        router = self.routers[key]
        prompt = dict(zip(table.ids, table.prompts, strict=True))
        probs = router.adequacy([prompt[i] for i in ids])
        return probs[:, [router.models.index(m) for m in group]]

    def _train(self, preset: str, table: Ratings) -> Any:
        started = time.time()
        name = "-".join(_slug(m) for m in table.models)
        if self.settings.keep_runs is not None:
            folder = self.settings.keep_runs / f"{preset}-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            router, info = train(table, preset, self.settings, folder)
        else:
            with tempfile.TemporaryDirectory(prefix=f"ladders-{preset}-") as tmp:
                router, info = train(table, preset, self.settings, Path(tmp))
        info = {"preset": preset, "models": list(table.models), **info,
                "seconds": round(time.time() - started, 1)}
        self.info.append(info)
        self.log(f"confroute {preset} on {' -> '.join(table.models)}: {info['epochs']} epochs, "
                 f"val AUROC {info['val_auroc']:.3f} (category prior {info['val_prior_auroc']:.3f})"
                 f", {info['variant']}, {info['seconds']:.0f} s")
        return router


def train(table: Ratings, preset: str, settings: Settings, folder: Path) -> tuple[Any, dict]:
    """Write the table, fit, export and load the router; (Router, training facts)."""
    from pytorch_lightning.callbacks import ModelSummary

    from confroute.config import RunConfig, override
    from confroute.export import export
    from confroute.runtime import Router
    from confroute.training.fit import fit
    from confroute.training.presets import preset_overrides

    source, prices = write_table(table, folder)
    values: dict[str, Any] = preset_overrides(preset) if preset != "default" else {}
    values.update({"data.source": str(source), "data.models": list(table.models),
                   "data.prices": str(prices), "data.seed": settings.seed,
                   "model.encoder": settings.encoder, "train.seed": settings.seed,
                   "train.max_steps": settings.max_steps,
                   "train.trainer.accelerator": "cpu", "train.trainer.enable_progress_bar": False})
    if settings.epochs is not None:
        values["train.max_epochs"] = settings.epochs
    cfg = override(RunConfig(), values)
    if cfg.model.family == "static":  # distilled once, then loaded as a model2vec folder
        cfg = override(cfg, {"model.encoder": str(static_encoder(
            cfg.model.encoder, cfg.model.static_dims, settings.cache))})
    with _quiet():
        # max_depth 0: no model summary table (printing only; training is untouched)
        result = fit(cfg, folder / "run", callbacks=[ModelSummary(max_depth=0)])
        export(folder / "run", folder / "artifact")
    router = Router.load(folder / "artifact")
    metrics = result.metrics
    prior = metrics.get("val_prior", {}).get("val_auroc")
    return router, {"train_rows": metrics["train_rows"], "val_rows": metrics["val_rows"],
                    "epochs": cfg.train.max_epochs, "global_steps": metrics["global_steps"],
                    "best_step": metrics.get("best_step"), "val_auroc": metrics["val_auroc"],
                    "val_prior_auroc": float("nan") if prior is None else prior,
                    "variant": router.variant, "encoder": cfg.model.encoder,
                    "family": cfg.model.family}


def write_table(table: Ratings, folder: Path) -> tuple[Path, Path]:
    """The train and val rows of `table` (routed and auxiliary ratings) as a K-model ratings
    parquet and a price YAML of the routed models (never a test row); ValueError when the table
    has no splits or nothing to validate on. bench/irt_runs.py writes its tables here too."""
    import pandas as pd
    import yaml

    if table.splits is None or not (table.splits == "val").any():
        raise ValueError("the table needs train and val splits (mmlu_pro.split with val_fraction)")
    keep = np.flatnonzero(table.splits != "test")
    aux = np.asarray(table.auxiliary_ratings)
    frame = pd.DataFrame({
        "id": table.ids[keep], "prompt": [table.prompts[i] for i in keep],
        "category": None if table.categories is None else table.categories[keep],
        "split": table.splits[keep], "tokens_in": table.tokens_in[keep],
        "tokens_out": table.tokens_out[keep],
        **{m: table.ratings[keep, k] for k, m in enumerate(table.models)},
        **{m: aux[keep, k] for k, m in enumerate(table.auxiliary)}})
    folder.mkdir(parents=True, exist_ok=True)
    source, prices = folder / "ratings.parquet", folder / "prices.yaml"
    frame.to_parquet(source, index=False)
    prices.write_text(yaml.safe_dump({m: {"input_per_mtok": p.input_per_mtok,
                                          "output_per_mtok": p.output_per_mtok}
                                      for m, p in zip(table.models, table.prices, strict=True)}))
    return source, prices


def static_encoder(source: str, dims: int | None, cache: Path) -> Path:
    """The model2vec folder distilled from `source` as the static family does (cached)."""
    from confroute.training.model import resolve_encoder

    resolved = resolve_encoder(source)
    digest = hashlib.sha256(f"{Path(resolved).resolve()}/{dims}".encode()).hexdigest()[:16]
    out = cache / "confroute" / f"m2v-{digest}"
    if not (out / "config.json").is_file():
        from model2vec.distill import distill

        tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
        with _quiet():
            distill(model_name=resolved, pca_dims=dims, quantize_to="float32"
                    ).save_pretrained(str(tmp))
        if not (out / "config.json").is_file():  # another process may have won
            tmp.replace(out)
    return out


class _quiet:
    """Lightning's and model2vec's INFO lines (device notes) and Lightning's advisory warnings
    (log interval, frozen modules in eval mode) off for a while."""

    names = ("pytorch_lightning", "lightning", "lightning.pytorch", "model2vec")

    def __enter__(self) -> None:
        self.levels = {n: logging.getLogger(n).level for n in self.names}
        for n in self.names:
            logging.getLogger(n).setLevel(logging.WARNING)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", module=r"pytorch_lightning\.")

    def __exit__(self, *exc: object) -> None:
        self.warnings.__exit__(*exc)
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()
