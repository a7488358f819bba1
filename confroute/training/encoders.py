"""Encoder families: token ids + attention mask -> one pooled prompt vector [batch, features].

RouterModel keeps the encoder itself as `.encoder` (a transformers model, or StaticEncoder) so its
state-dict keys, freezing and export are those of earlier versions; this module builds, saves and
pools it.

Two families, chosen by `ModelConfig.family`, both taking only (input_ids, attention_mask) so the
exported ONNX graph and the torch-free runtime are the same for every family:

- `transformer`: any Hugging Face encoder truncated to its first `layers` layers (the upper
  layers are never loaded), mean (or [CLS]) pooling over one chosen hidden state or the
  concatenation of several layers' pooled states (`pool_layers`, 0 = the embedding output).
  Lower MiniLM layers route RouteLLM prompts as well as the last one (bench/routers.py).
- `static`: a model2vec static embedding table distilled from any encoder (Tulkens & van Dongen,
  "Model2Vec", 2024: each vocabulary token's output embedding, PCA, SIF weighting), then a masked
  mean and L2 normalisation as model2vec's StaticModel does. In ONNX it is a Gather and a mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from confroute import quiet
from confroute.config import ModelConfig
from confroute.errors import ConfigError

STATIC_CONFIG = {"family": "static"}


def pooled_features(encoder: nn.Module, cfg: ModelConfig, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, seq] ids and mask -> [batch, feature_size(encoder, cfg)] pooled prompt vectors.

    `encoder` is a transformers PreTrainedModel (family `transformer`) or a StaticEncoder.
    """
    if isinstance(encoder, StaticEncoder):
        return encoder(input_ids, attention_mask)
    depth = int(_config(encoder).num_hidden_layers)
    layers = pool_indices(cfg, depth)
    if layers == [depth]:  # only the last layer: no need to keep every hidden state
        states = [encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state]
    else:
        out = encoder(input_ids=input_ids, attention_mask=attention_mask,
                      output_hidden_states=True)
        states = [out.hidden_states[i] for i in layers]
    pooled = [s[:, 0] if cfg.pooling == "cls" else masked_mean(s, attention_mask) for s in states]
    return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)


def feature_size(encoder: nn.Module, cfg: ModelConfig) -> int:
    """Width of `pooled_features`: the hidden size times the number of pooled layers."""
    if isinstance(encoder, StaticEncoder):
        return encoder.output_size
    return int(_config(encoder).hidden_size) * len(cfg.pool_layers)


def pool_indices(cfg: ModelConfig, depth: int) -> list[int]:
    """`cfg.pool_layers` as indices into hidden_states (0 = embeddings, depth = last layer)."""
    for index in cfg.pool_layers:
        if not -(depth + 1) <= index <= depth:
            raise ConfigError(f"model.pool_layers has {index}, but the encoder keeps {depth} "
                              f"layers: use 0 (embedding output) to {depth}, or -1 (last)")
    return [i % (depth + 1) for i in cfg.pool_layers]


class StaticEncoder(nn.Module):
    """Embedding table -> masked mean -> L2 normalisation: [batch, seq] -> [batch, dim]."""

    def __init__(self, vocab_size: int, dim: int, weights: torch.Tensor | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        if weights is not None:
            self.embedding.weight.data.copy_(weights)
        self.output_size = dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(self.embedding(input_ids), attention_mask)
        return nn.functional.normalize(pooled, dim=-1)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the unmasked positions of [batch, seq, dim] -> [batch, dim]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def build(cfg: ModelConfig, source: str) -> tuple[nn.Module, Any]:
    """The pretrained encoder of `cfg` from `source` (a resolved name or path) and its
    `tokenizers.Tokenizer`. Raises ConfigError when the encoder cannot be loaded."""
    if cfg.family == "static":
        return _static_pretrained(source, cfg.static_dims)
    model, tokenizer = _hf_pretrained(source, cfg.layers)
    pool_indices(cfg, int(model.config.num_hidden_layers))  # fail early on a bad pool_layers
    return model, tokenizer


def save_config(encoder: nn.Module, directory: Path) -> None:
    """Write what `from_saved` needs to rebuild the encoder's shape (not its weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, StaticEncoder):
        weight = encoder.embedding.weight
        (directory / "config.json").write_text(json.dumps(
            {**STATIC_CONFIG, "vocab_size": int(weight.shape[0]), "dim": int(weight.shape[1])}))
    else:
        _config(encoder).save_pretrained(directory)


def from_saved(cfg: ModelConfig, directory: Path) -> nn.Module:
    """An encoder with the saved shape and random weights (the caller loads the state dict)."""
    if cfg.family == "static":
        shape = json.loads((directory / "config.json").read_text())
        return StaticEncoder(int(shape["vocab_size"]), int(shape["dim"]))
    from transformers import AutoConfig, AutoModel

    return AutoModel.from_config(AutoConfig.from_pretrained(directory))


def describe(encoder: nn.Module, cfg: ModelConfig) -> dict[str, Any]:
    """The encoder's family and shape, for the artifact manifest."""
    if isinstance(encoder, StaticEncoder):
        weight = encoder.embedding.weight
        return {"family": "static", "model_type": "model2vec", "vocab_size": int(weight.shape[0]),
                "hidden_size": int(weight.shape[1]), "features": encoder.output_size}
    config = _config(encoder)
    return {"family": "transformer", "model_type": config.model_type,
            "hidden_size": config.hidden_size, "layers": config.num_hidden_layers,
            "pool_layers": list(cfg.pool_layers), "features": feature_size(encoder, cfg)}


def _hf_pretrained(source: str, layers: int | None) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    quiet.transformers_loading()

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
        depth = getattr(config, "num_hidden_layers", None)
        if layers is not None and depth is None:
            raise ConfigError(f"model.layers={layers} but encoder '{source}' does not say how "
                              "many layers it has (no num_hidden_layers); leave model.layers "
                              "unset to use it whole")
        # `layers` is a ceiling: an encoder with fewer layers is used whole.
        extra: dict[str, Any] = ({} if layers is None or depth is None or layers >= depth
                                 else {"num_hidden_layers": layers})
        model = AutoModel.from_pretrained(source, **extra)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load encoder '{source}': {exc}. Use a local path or a "
                          "Hugging Face name reachable from this machine ('minilm' is bundled)"
                          ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"encoder '{source}' has no fast (tokenizers) tokenizer; the ONNX "
                          "runtime needs tokenizer.json")
    return model, tokenizer.backend_tokenizer


def _static_pretrained(source: str, dims: int | None) -> tuple[StaticEncoder, Any]:
    """A model2vec model: loaded when `source` already is one, else distilled from `source`."""
    try:
        from model2vec import StaticModel

        from confroute.training import static_cache
    except ImportError as exc:
        raise ConfigError("model.family 'static' needs model2vec: pip install "
                          "'confroute[train]'") from exc
    try:
        if _is_model2vec(source):
            static = StaticModel.from_pretrained(source)
        else:
            static = static_cache.distilled(source, dims)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"could not distil a static encoder from '{source}': {exc}. Use a "
                          "local encoder path ('minilm' is bundled) or a model2vec folder"
                          ) from exc
    weights = torch.as_tensor(static.embedding, dtype=torch.float32)
    return StaticEncoder(int(weights.shape[0]), int(weights.shape[1]), weights=weights), \
        static.tokenizer


def _is_model2vec(source: str) -> bool:
    config = Path(source) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "model2vec"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _config(encoder: nn.Module) -> Any:
    """A transformers encoder's config (typed Any: nn.Module's attributes are Tensor | Module)."""
    return encoder.config
