"""Frozen features for bench/routers.py: per-layer means of an encoder and the model2vec static
encoder's vectors, computed once and cached by content (bench/.cache is git-ignored)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_LENGTH = 128  # ModelConfig's default: what a trained router sees


@dataclasses.dataclass
class Family:
    """One router: where its features come from, its head, and the ONNX shape it exports to."""

    name: str
    features: str  # "layers", "static" or "tfidf"
    layers: tuple[int, ...] = ()
    head: str = "lr"
    model: dict[str, Any] | None = None  # ModelConfig overrides of the exported shape


class Features:
    """Frozen features of texts, cached by content: per-layer means [n, depth + 1, hidden] of
    the encoder, and the model2vec static encoder's pooled vectors [n, dims]."""

    def __init__(self, encoder: str, cache: Path):
        from transformers import AutoConfig

        from confroute.training.model import resolve_encoder

        self.source = resolve_encoder(encoder)
        self.cache = cache
        self.depth = int(AutoConfig.from_pretrained(self.source).num_hidden_layers)

    def static_dir(self) -> Path:
        """The distilled model2vec folder (distilled once, then reused)."""
        out = self.cache / f"m2v-{_digest([self.source])}"
        if not (out / "config.json").is_file():
            from model2vec.distill import distill

            _log("distilling the static encoder with model2vec")
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            distill(model_name=self.source, pca_dims=256,
                    quantize_to="float32").save_pretrained(str(tmp))
            if not (out / "config.json").is_file():  # atomic: another process may have won
                tmp.replace(out)
        return out

    def get(self, kind: str, texts: list[str]) -> np.ndarray:
        path = self.cache / f"{kind}-{_digest([self.source, MAX_LENGTH, *texts])}.npy"
        if path.is_file():
            return np.load(path)
        values = self._layers(texts) if kind == "layers" else self._static(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), values)
        path.with_suffix(".tmp.npy").replace(path)
        return values

    def _layers(self, texts: list[str]) -> np.ndarray:
        import torch
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.source)
        model = AutoModel.from_pretrained(self.source).eval()
        out = np.zeros((len(texts), self.depth + 1, model.config.hidden_size), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                idx = order[start:start + 64]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=MAX_LENGTH, return_tensors="pt")
                states = model(**batch, output_hidden_states=True).hidden_states
                mask = batch["attention_mask"].unsqueeze(-1).float()
                for layer, hidden in enumerate(states):
                    out[idx, layer] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
        return out

    def _static(self, texts: list[str]) -> np.ndarray:
        import torch

        from confroute.config import ModelConfig
        from confroute.training.model import RouterModel

        model = RouterModel(ModelConfig(family="static", encoder=str(self.static_dir()))).eval()
        encode = model.text_encoder()
        with torch.inference_mode():
            parts = [model.embed(**{k: torch.from_numpy(v) for k, v in
                                    encode(texts[s:s + 256]).items()}).numpy()
                     for s in range(0, len(texts), 256)]
        return np.concatenate(parts)


def matrix(fam: Family, feats: Features, texts: list[str]) -> np.ndarray | list[str]:
    if fam.features == "tfidf":
        return texts
    values = feats.get(fam.features, texts)
    if fam.features == "layers":
        return values[:, list(fam.layers)].reshape(len(texts), -1)
    return values




def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def _log(message: str) -> None:
    print(f"[routers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
