"""Where routers are trained and where they are scored, so no prompt is scored by a router that
saw its outcome.

- Cross-validation within a benchmark: the prompts are split into k folds by a fixed seeded
  permutation (fold = position in the permutation mod k); each fold is scored by a router trained
  on the other k - 1, and the out-of-fold scores are pooled into one curve. The assignment is
  recorded (`assignment_record`) so anyone can rebuild the exact folds.
- Transfer: train on whole benchmarks (e.g. MMLU + GSM8K) and score another (e.g. MT-Bench).

A router recipe is any callable `Fold -> scores for fold.test`, so the frozen-embedding baselines
and the fine-tuned encoder go through the same folds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from confroute.errors import ConfigError, DataError
from confroute.evaluation.groundtruth import GroundTruth
from confroute.files import replacing


@dataclasses.dataclass
class Part:
    """Rows of one side of a fold: ids, prompt texts, frozen embeddings, labels."""

    ids: np.ndarray
    texts: list[str]
    emb: np.ndarray | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class Fold:
    name: str
    train: Part
    test: Part
    test_index: np.ndarray
    """Positions of the test rows in the evaluated ground truth."""


Recipe = Callable[[Fold], np.ndarray]


def kfold_assignment(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of each of n rows: a seeded permutation, position mod k."""
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds; found {k}")
    if n < k:
        raise DataError(f"{n} prompts cannot be split into {k} folds")
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


def assignment_record(truth: GroundTruth, fold: np.ndarray, seed: int) -> dict[str, object]:
    """Everything needed to rebuild and check the folds: ids digest, seed, one digit per row."""
    return {"method": "numpy default_rng(seed).permutation(n); fold = rank mod k",
            "seed": seed, "k": int(fold.max()) + 1, "n": len(fold),
            "ids_sha256": ids_digest(truth.ids),
            "fold_of_row": "".join(str(f) for f in fold) if fold.max() < 10 else fold.tolist()}


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


def part(truth: GroundTruth, emb: np.ndarray | None, index: np.ndarray | None = None) -> Part:
    index = np.arange(len(truth)) if index is None else np.asarray(index)
    return Part(truth.ids[index], [truth.prompts[i] for i in index],
                None if emb is None else emb[index], truth.labels()[index])


def cv_folds(truth: GroundTruth, emb: np.ndarray | None, k: int = 5,
             seed: int = 0) -> tuple[list[Fold], np.ndarray]:
    """The k folds of `truth` and the fold number of each row."""
    _check_emb(truth, emb)
    fold = kfold_assignment(len(truth), k, seed)
    folds = []
    for f in range(k):
        train, test = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        folds.append(Fold(f"{truth.name}/cv{k}-seed{seed}/fold{f}", part(truth, emb, train),
                          part(truth, emb, test), test))
    return folds, fold


def transfer_fold(train: Sequence[tuple[GroundTruth, np.ndarray | None]],
                  test: tuple[GroundTruth, np.ndarray | None]) -> Fold:
    """Train on all rows of the `train` benchmarks, score every row of `test`."""
    parts = []
    for truth, emb in [*train, test]:
        _check_emb(truth, emb)
        parts.append(part(truth, emb))
    *train_parts, test_part = parts
    overlap = set(test_part.ids) & set().union(*(set(p.ids) for p in train_parts))
    if overlap:
        raise DataError(f"transfer: {len(overlap)} test prompt id(s) are also training rows, "
                        f"e.g. {sorted(overlap)[0]}")
    embs = [p.emb for p in train_parts if p.emb is not None]
    merged = Part(np.concatenate([p.ids for p in train_parts]),
                  [t for p in train_parts for t in p.texts],
                  np.concatenate(embs) if len(embs) == len(train_parts) else None,
                  np.concatenate([p.labels for p in train_parts]))
    names = "+".join(t.name for t, _ in train)
    return Fold(f"{names}->{test[0].name}", merged, test_part, np.arange(len(test[0])))


def run(folds: Sequence[Fold], recipe: Recipe, n: int) -> np.ndarray:
    """Scores for all n evaluated rows, each from the fold that held it out."""
    scores = np.full(n, np.nan)
    for fold in folds:
        values = np.asarray(recipe(fold), dtype=float)
        if values.shape != (len(fold.test),):
            raise DataError(f"{fold.name}: the router returned {values.shape} scores for "
                            f"{len(fold.test)} prompts")
        scores[fold.test_index] = values
    missing = np.flatnonzero(np.isnan(scores))
    if missing.size:
        raise DataError(f"{missing.size} row(s) got no score (first {int(missing[0])}); the folds "
                        "must cover every row, and the router must not return NaN")
    return scores


def cached(recipe: Recipe, key: str, cache_dir: str | Path) -> Recipe:
    """`recipe` with each fold's scores stored under `cache_dir`, keyed by `key` (the router and
    its settings) and the fold's rows, so a rerun of the same cell reads instead of refitting."""

    def run(fold: Fold) -> np.ndarray:
        path = Path(cache_dir) / f"{fold_digest(fold, key)}.npy"
        if path.is_file():
            return np.load(path)
        scores = np.asarray(recipe(fold), dtype=float)
        with replacing(path) as tmp:
            np.save(tmp, scores)
        return scores

    return run


def fold_digest(fold: Fold, key: str) -> str:
    """sha256 over `key`, the training ids and labels, and the test ids and texts."""
    digest = hashlib.sha256(key.encode())
    for values in (fold.train.ids, fold.train.labels.round(6), fold.test.ids):
        digest.update("\n".join(map(str, values)).encode())
    digest.update("\0".join(fold.test.texts).encode())
    return digest.hexdigest()[:24]


def _check_emb(truth: GroundTruth, emb: np.ndarray | None) -> None:
    if emb is not None and len(emb) != len(truth):
        raise DataError(f"{truth.name}: {len(emb)} embeddings for {len(truth)} prompts")
