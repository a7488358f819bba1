"""The fine-tuned encoder router as a protocol recipe: fit -> export (ONNX) -> Router.score.

Inside each fold it trains confroute's own router on (a fixed subsample of) the fold's training
rows with `confroute.training.fit.fit`, exports it with `confroute.export.export` and scores
the held-out
prompts through the deployable runtime `confroute.runtime.Router`, so the evaluated scores are
those the artifact would give in production. Scores are cached by a digest of everything that
determines them (settings, training ids and labels, test ids), so reruns are free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import ConfigError
from confroute.evaluation.protocols import Fold, Recipe
from confroute.files import replacing, write_json


@dataclasses.dataclass
class FineTuneSettings:
    """How big each fold's fine-tuning is (CPU cost ~ max_steps x batch_size x max_length)."""

    encoder: str = "minilm"
    max_train_rows: int | None = 2000
    """Train on at most this many of the fold's training rows (a fixed seeded subsample)."""
    max_steps: int = 200
    batch_size: int = 32
    max_length: int = 128
    learning_rate: float = 5e-5
    val_fraction: float = 0.1
    """Share of the (subsampled) training rows held out for checkpoint selection."""
    int8: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1:
            raise ConfigError("fine-tuning needs max_steps >= 1 and batch_size >= 1")
        if self.max_train_rows is not None and self.max_train_rows < 10:
            raise ConfigError(f"max_train_rows must be >= 10 or None; found {self.max_train_rows}")


def recipe(settings: FineTuneSettings, cache_dir: str | Path | None = None,
           log: dict[str, Any] | None = None) -> Recipe:
    """A recipe that fine-tunes per fold; `log` (if given) collects each fold's fit metrics."""

    def run(fold: Fold) -> np.ndarray:
        key = _digest(settings, fold)
        cached = None if cache_dir is None else Path(cache_dir) / key
        if cached is not None and (cached / "scores.npy").is_file():
            info = json.loads((cached / "fit.json").read_text())
            scores = np.load(cached / "scores.npy")
        else:
            scores, info = _fit_and_score(settings, fold)
            if cached is not None:
                write_json(cached / "fit.json", info, indent=1, default=str)
                with replacing(cached / "scores.npy") as tmp:  # last: it marks the entry done
                    np.save(tmp, scores)
        if log is not None:
            log[fold.name] = info
        return scores

    return run


def _fit_and_score(settings: FineTuneSettings, fold: Fold) -> tuple[np.ndarray, dict[str, Any]]:
    from confroute.export import export
    from confroute.runtime import Router
    from confroute.training.fit import fit

    data = _training_data(settings, fold)
    with tempfile.TemporaryDirectory(prefix="confroute-eval-") as tmp:
        result = fit(_run_config(settings), Path(tmp) / "run", data=data)
        manifest = export(result.run_dir, Path(tmp) / "artifact", _export_config(settings))
        router = Router.load(Path(tmp) / "artifact")
        scores = router.score(fold.test.texts)
        info = {"fit": {k: v for k, v in result.metrics.items() if k != "data_report"},
                "variant": router.variant, "train_rows": int(data.report["rows"]["train"]),
                "val_rows": int(data.report["rows"]["val"]),
                "export_checks": manifest.get("metrics", {}).get("export")}
        shutil.rmtree(Path(tmp) / "run", ignore_errors=True)
    return scores, info


def _training_data(settings: FineTuneSettings, fold: Fold) -> Any:
    import pandas as pd

    from confroute.dataset.schema import LabelledPrompts

    rng = np.random.default_rng(settings.seed)
    rows = rng.permutation(len(fold.train))
    if settings.max_train_rows is not None:
        rows = rows[:settings.max_train_rows]
    n_val = max(1, int(round(len(rows) * settings.val_fraction)))
    frame = pd.DataFrame({
        "id": fold.train.ids[rows], "prompt": [fold.train.texts[i] for i in rows],
        "label": fold.train.labels[rows], "source": fold.name,
        "split": ["val"] * n_val + ["train"] * (len(rows) - n_val)})
    report = {"source": fold.name, "format": "labelled", "rows_read": len(fold.train),
              "dropped": {"subsample": int(len(fold.train) - len(rows))},
              "label_rule": "judge", "label_params": {"margin": 0.0, "ties": "edge"},
              "rows": {"train": len(rows) - n_val, "val": n_val, "test": 0}}
    return LabelledPrompts(frame, report)


def _run_config(settings: FineTuneSettings) -> Any:
    from confroute.config import RunConfig, override

    return override(RunConfig(), {
        "model.encoder": settings.encoder, "model.max_length": settings.max_length,
        "train.max_steps": settings.max_steps, "train.batch_size": settings.batch_size,
        "train.learning_rate": settings.learning_rate, "train.seed": settings.seed,
        "train.max_epochs": 1000,  # max_steps is the budget; epochs only bound it from above
        "train.trainer.enable_progress_bar": False, "data.seed": settings.seed})


def _export_config(settings: FineTuneSettings) -> Any:
    from confroute.config import ExportConfig

    return ExportConfig(int8=settings.int8)


def _digest(settings: FineTuneSettings, fold: Fold) -> str:
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(settings), sort_keys=True).encode())
    for values in (fold.train.ids, fold.train.labels.round(6), fold.test.ids):
        digest.update("\n".join(map(str, values)).encode())
    digest.update("\0".join(fold.test.texts).encode())
    return digest.hexdigest()[:24]
