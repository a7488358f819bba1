"""The paper's and RouteLLM's router families, over frozen prompt embeddings, as baselines.

Each baseline is fitted on (embedding, label) pairs, label = P(cloud needed) in [0, 1], and scores
new embeddings with a number where higher means "send to the cloud". Our own implementations of
the families (RouteLLM's code calls a remote embedding API per request and needs arena data):

- `random`: uniform scores, ignoring the prompt (the evaluation averages it over seeds).
- `knn`: mean label of the k most cosine-similar training prompts.
- `mlp`: a one-hidden-layer perceptron trained with binary cross-entropy.
- `mf`: RouteLLM's matrix-factorisation router: a learned vector per model and a projection of the
  prompt; a model's strength on a prompt is `c . (normalize(v_model) * W x)` and
  P(cloud wins) = sigmoid(strength_cloud - strength_edge), trained on the same labels. With only
  the two routed models it is a low-rank bilinear scorer.
- `sw`: RouteLLM's similarity-weighted ranking: each training battle is weighted by
  10 * 10^(sim / max sim) to the query and a Bradley-Terry model is fitted on the weighted battles.
  With the two routed models the BT maximum-likelihood win rate has the closed form
  sum(w * label) / sum(w), which is what is computed (no optimiser needed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np

from confroute.errors import ConfigError, DataError, require

_CHUNK = 1024  # query rows per similarity block: bounds memory to CHUNK x n_train floats


class Baseline(Protocol):
    name: str

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> Baseline: ...

    def score(self, emb: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass
class RandomRouter:
    seed: int = 0
    name: str = "random"

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> RandomRouter:
        return self

    def score(self, emb: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(emb))


@dataclasses.dataclass
class KNNRouter:
    k: int = 10
    name: str = "knn"

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> KNNRouter:
        if self.k < 1:
            raise ConfigError(f"knn: k must be >= 1; found {self.k}")
        self._emb, self._labels = _check(emb, labels)
        return self

    def score(self, emb: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self._labels))
        out = np.empty(len(emb))
        for start, sims in _similarities(emb, self._emb):
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            out[start:start + len(sims)] = self._labels[top].mean(axis=1)
        return out


@dataclasses.dataclass
class SWRankingRouter:
    name: str = "sw"

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> SWRankingRouter:
        self._emb, self._labels = _check(emb, labels)
        return self

    def score(self, emb: np.ndarray) -> np.ndarray:
        out = np.empty(len(emb))
        for start, sims in _similarities(emb, self._emb):
            top = sims.max(axis=1, keepdims=True)
            # RouteLLM's weighting; a non-positive max similarity would flip it, so floor it
            weights = 10 * 10 ** (sims / np.maximum(top, 1e-6))
            out[start:start + len(sims)] = weights @ self._labels / weights.sum(axis=1)
        return out


@dataclasses.dataclass
class MLPRouter:
    hidden: int = 128
    epochs: int = 200
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1
    batch_size: int = 256
    seed: int = 0
    name: str = "mlp"

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> MLPRouter:
        torch = require("torch", "train")
        emb, labels = _check(emb, labels)
        torch.manual_seed(self.seed)
        self._net = torch.nn.Sequential(
            torch.nn.Linear(emb.shape[1], self.hidden), torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout), torch.nn.Linear(self.hidden, 1))
        _train(self._net, lambda x: self._net(x).squeeze(-1), emb, labels, self)
        return self

    def score(self, emb: np.ndarray) -> np.ndarray:
        return _predict(self._net, lambda x: self._net(x).squeeze(-1), emb)


@dataclasses.dataclass
class MFRouter:
    dim: int = 128
    epochs: int = 200
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0
    name: str = "mf"

    def fit(self, emb: np.ndarray, labels: np.ndarray) -> MFRouter:
        torch = require("torch", "train")
        emb, labels = _check(emb, labels)
        torch.manual_seed(self.seed)
        self._net = _mf_module(torch, emb.shape[1], self.dim)
        _train(self._net, self._net, emb, labels, self)
        return self

    def score(self, emb: np.ndarray) -> np.ndarray:
        return _predict(self._net, self._net, emb)


FAMILIES: dict[str, Callable[..., Baseline]] = {
    "random": RandomRouter, "knn": KNNRouter, "mlp": MLPRouter, "mf": MFRouter,
    "sw": SWRankingRouter,
}


def make(name: str, **settings: object) -> Baseline:
    """A baseline by family name (`random`, `knn`, `mlp`, `mf`, `sw`)."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown baseline '{name}'; choose from {', '.join(FAMILIES)}")
    try:
        return FAMILIES[name](**settings)
    except TypeError as exc:
        raise ConfigError(f"baseline '{name}': {exc}") from exc


# --- shared pieces ----------------------------------------------------------------------------


def _check(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    emb = np.asarray(emb, dtype=np.float32)
    labels = np.asarray(labels, dtype=float)
    if emb.ndim != 2 or len(emb) != len(labels) or len(labels) == 0:
        raise DataError(f"baseline training needs one embedding row per label; found embeddings "
                        f"{emb.shape} and {len(labels)} labels")
    if not np.isfinite(labels).all() or (labels < 0).any() or (labels > 1).any():
        raise DataError("baseline labels must be finite numbers in [0, 1]")
    return emb, labels


def _similarities(query: np.ndarray, keys: np.ndarray):
    """Cosine similarities in row blocks (embeddings are unit length, so a dot product)."""
    query = np.asarray(query, dtype=np.float32)
    for start in range(0, len(query), _CHUNK):
        yield start, query[start:start + _CHUNK] @ keys.T


def _mf_module(torch, text_dim: int, dim: int):
    class MF(torch.nn.Module):
        """Two model vectors (0 = edge, 1 = cloud), a prompt projection and a scoring vector."""

        def __init__(self) -> None:
            super().__init__()
            self.models = torch.nn.Embedding(2, dim)
            self.proj = torch.nn.Linear(text_dim, dim, bias=False)
            self.classifier = torch.nn.Linear(dim, 1, bias=False)

        def forward(self, x):
            models = torch.nn.functional.normalize(self.models.weight, dim=-1)
            strength = self.classifier(self.proj(x).unsqueeze(1) * models).squeeze(-1)
            return strength[:, 1] - strength[:, 0]  # logit of P(cloud beats edge)

    return MF()


def _train(module, logits_fn, emb: np.ndarray, labels: np.ndarray, hp) -> None:
    torch = require("torch", "train")
    x, y = torch.from_numpy(emb), torch.from_numpy(labels.astype(np.float32))
    optimizer = torch.optim.AdamW(module.parameters(), lr=hp.learning_rate,
                                  weight_decay=hp.weight_decay)
    generator = torch.Generator().manual_seed(hp.seed)
    module.train()
    for _ in range(hp.epochs):
        for idx in torch.randperm(len(x), generator=generator).split(hp.batch_size):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits_fn(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    module.eval()


def _predict(module, logits_fn, emb: np.ndarray) -> np.ndarray:
    torch = require("torch", "train")
    with torch.inference_mode():
        return torch.sigmoid(logits_fn(torch.from_numpy(np.asarray(emb, np.float32)))).numpy() \
            .astype(float)
