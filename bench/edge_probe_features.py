"""The features bench/edge_probe.py compares: the edge LM's own hidden states after reading the
prompt (last token and mean, at chosen layers, in the chat form it was sampled in and bare),
MiniLM sentence embeddings and the static table; each computed once and cached under CACHE
(bench/edge_probe.py sets it from --cache-dir)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "bench" / ".cache" / "edge_probe"


def features(frame: Any, layers: list[int], args: argparse.Namespace) -> dict[str, np.ndarray]:
    _LM["name"] = args.edge_model
    chat = [_edge_text(row) for row in frame.to_dict("records")]
    bare = [str(p) for p in frame["prompt"]]
    out: dict[str, np.ndarray] = {}
    for fmt, texts in (("chat", chat), ("bare", bare)):
        last, mean = _edge_states(texts, layers)
        for i, k in enumerate(layers):
            out[f"edge-{fmt}-k{k}-last"] = last[:, i]
            out[f"edge-{fmt}-k{k}-mean"] = mean[:, i]
    out["minilm"] = _cached("minilm", bare, _minilm)
    if not args.no_static:
        out["static"] = _cached("static", bare, _static)
    return out


def _edge_text(row: dict[str, Any]) -> str:
    """The prompt as the edge model read it when the dataset was sampled (recorded per row)."""
    sampling = json.loads(row.get("sampling_edge") or "{}")
    key = "instruction_choice" if row.get("answer_type") == "choice" else "instruction_number"
    instruction = row.get(key)
    prompt = str(row["prompt"])
    if isinstance(instruction, str) and instruction.strip():
        prompt = f"{prompt}\n{instruction.strip()}"
    messages = [{"role": "user", "content": prompt}]
    if sampling.get("system") is not None:
        messages.insert(0, {"role": "system", "content": sampling["system"]})
    return _tokenizer().apply_chat_template(messages, tokenize=False, add_generation_prompt=True
                                            ) + sampling.get("answer_prefix", "")


_LM: dict[str, Any] = {}


def _edge_lm() -> tuple[Any, Any]:
    if "model" not in _LM:
        try:
            from confroute.labelling.local import LocalBackend
        except ImportError:
            from confroute.labelling.sampling import LocalBackend
        backend = LocalBackend(_LM.get("name", "smollm2"))
        _LM["model"], _LM["tokenizer"] = backend.model, backend.tokenizer
    return _LM["model"], _LM["tokenizer"]


def _tokenizer() -> Any:
    return _edge_lm()[1]


def _edge_states(texts: list[str], layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """[n, len(layers), hidden] last-token and mean-pooled hidden states after k layers.

    Cached per text (bench/.cache/edge_probe), so a grown dataset computes only its new prompts.
    """
    path = CACHE / f"edge-states-{_key([_LM.get('name'), layers])}.npz"
    known: dict[str, int] = {}
    last_all = mean_all = None
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        known = {k: i for i, k in enumerate(data["keys"].tolist())}
        last_all, mean_all = data["last"], data["mean"]
    keys = [_key(t) for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if todo:
        new_last, new_mean = _compute_states([t for _, t in todo], layers)
        start = len(known)
        known.update({k: start + i for i, (k, _) in enumerate(todo)})
        last_all = _stack(last_all, new_last)
        mean_all = _stack(mean_all, new_mean)
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), last=last_all, mean=mean_all)
        tmp.replace(path)
    rows = [known[k] for k in keys]
    return last_all[rows].astype(np.float32), mean_all[rows].astype(np.float32)


def _stack(old: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    new = new.astype(np.float16)
    return new if old is None else np.concatenate([old, new])


def _compute_states(texts: list[str], layers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    import torch

    model, tok = _edge_lm()
    tok.padding_side = "right"
    depth = max(layers)
    last, mean = [], []
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding
    with torch.inference_mode():
        for start in range(0, len(texts), 16):
            idx = order[start:start + 16]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True,
                      add_special_tokens=False)
            hidden = _first_layers(model, enc, depth)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            ends = enc["attention_mask"].sum(1) - 1
            stack = torch.stack([hidden[k] for k in layers], 1)  # (B, L, T, H)
            last.append((idx, stack[torch.arange(len(idx)), :, ends].numpy()))
            pooled = (stack * mask.unsqueeze(1)).sum(2) / mask.sum(1).unsqueeze(1)
            mean.append((idx, pooled.numpy()))
    return _unsort(last, len(texts)), _unsort(mean, len(texts))


def _first_layers(model: Any, enc: Any, depth: int) -> Any:
    """Hidden states after 0..depth decoder layers, running only the first `depth` layers."""
    decoder = model.model
    kept = decoder.layers
    decoder.layers = kept[:depth]
    try:
        return decoder(**enc, output_hidden_states=True).hidden_states
    finally:
        decoder.layers = kept


def _unsort(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    shape = parts[0][1].shape[1:]
    out = np.zeros((n, *shape), dtype=np.float32)
    for idx, values in parts:
        out[idx] = values
    return out


def _minilm(texts: list[str]) -> np.ndarray:
    from confroute.evaluation.embeddings import embed

    return embed(texts, "minilm", max_length=256)


def _static(texts: list[str]) -> np.ndarray:
    from model2vec.distill import distill

    from confroute.training.model import resolve_encoder

    model = distill(model_name=resolve_encoder("minilm"), pca_dims=256)
    return np.asarray(model.encode(texts), dtype=np.float32)


def _cached(name: str, texts: list[str], compute: Any) -> np.ndarray:
    path = CACHE / f"{name}-{_key([name, texts])}.npy"
    if path.is_file():
        return np.load(path)
    values = compute(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def _key(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:20]
