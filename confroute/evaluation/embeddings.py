"""Frozen-encoder prompt embeddings for the baseline routers, computed once and cached.

The baselines (kNN, MLP, MF, SW ranking) all read the same embeddings: mean-pooled, L2-normalised
hidden states of a frozen encoder (all-MiniLM-L6-v2 by default, the encoder confroute fine-tunes),
so the comparison with the fine-tuned router is about the router, not the embedding model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from confroute.errors import ConfigError, require
from confroute.files import replacing

DEFAULT_MAX_LENGTH = 256  # all-MiniLM-L6-v2's own sentence-embedding length


def resolve_encoder_path(encoder: str) -> str:
    """`minilm` -> the packaged all-MiniLM-L6-v2 folder; anything else is returned as given."""
    from confroute.training.model import resolve_encoder

    return resolve_encoder(encoder)


def embed(texts: Sequence[str], encoder: str = "minilm", max_length: int = DEFAULT_MAX_LENGTH,
          batch_size: int = 64, cache_dir: str | Path | None = None) -> np.ndarray:
    """Embeddings [n, hidden] (float32, unit length) of `texts`; cached by content when asked."""
    if not texts:
        raise ConfigError("no texts to embed")
    path = resolve_encoder_path(encoder)
    cache = None if cache_dir is None else _cache_file(texts, path, max_length, cache_dir)
    if cache is not None and cache.is_file():
        return np.load(cache)
    vectors = _encode(list(texts), path, max_length, batch_size)
    if cache is not None:
        with replacing(cache) as tmp:  # a killed run never leaves a half-written cache file
            np.save(tmp, vectors)
    return vectors


def cached(texts: Sequence[str], cache_dir: str | Path, encoder: str = "minilm",
           max_length: int = DEFAULT_MAX_LENGTH) -> np.ndarray | None:
    """The cached embeddings of exactly `texts`, or None when they were never computed."""
    cache = _cache_file(texts, resolve_encoder_path(encoder), max_length, cache_dir)
    return np.load(cache) if cache.is_file() else None


def _cache_file(texts: Sequence[str], path: str, max_length: int, cache_dir: str | Path) -> Path:
    key = hashlib.sha256(json.dumps([Path(path).name, max_length, list(texts)]).encode())
    return Path(cache_dir) / f"emb-{key.hexdigest()[:24]}.npy"


def _encode(texts: list[str], path: str, max_length: int, batch_size: int) -> np.ndarray:
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path).eval()
    # length-sorted batches waste little on padding; results are put back in input order
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out
