"""What `confroute tune` searches: the space's fields, how each is drawn, and its checks.

`SearchSpace` is the user-facing dataclass (YAML `space:` / `--space.<name>`); `PARAMS` says which
RunConfig key each field sets and how optuna draws it. `active_space` resolves the label
parameters against the data and `check_space` proves, before any trial runs, that every value a
range allows is a valid setting for the base config and its encoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from confroute.config import RunConfig, override
from confroute.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Param:
    """How one SearchSpace field is searched: the RunConfig key it sets, and its kind."""

    key: str
    kind: Literal["log", "float", "int", "choice"]


PARAMS: dict[str, Param] = {
    "learning_rate": Param("train.learning_rate", "log"),
    "batch_size": Param("train.batch_size", "choice"),
    "max_epochs": Param("train.max_epochs", "int"),
    "max_length": Param("model.max_length", "choice"),
    "pooling": Param("model.pooling", "choice"),
    "dropout": Param("model.dropout", "float"),
    "warmup_ratio": Param("train.warmup_ratio", "float"),
    "freeze_layers": Param("train.freeze_layers", "int"),
    "tau": Param("data.label.tau", "float"),
    "judge_margin": Param("data.label.judge_margin", "float"),
}
LABEL_PARAMS = {"tau": [0.0, 0.5], "judge_margin": [0.0, 2.0]}  # ranges used by "auto"


@dataclasses.dataclass
class SearchSpace:
    """What `confroute tune` varies. A range is `[low, high]` (inclusive), choices are a list,
    and null keeps the base config's value. Every value is checked against the config's own
    limits and the encoder before any trial runs."""

    learning_rate: list[float] | None = dataclasses.field(default_factory=lambda: [1e-5, 2e-4])
    """Encoder learning rate: log-uniform range."""
    batch_size: list[int] | None = dataclasses.field(default_factory=lambda: [16, 32, 64])
    """Choices."""
    max_epochs: list[int] | None = dataclasses.field(default_factory=lambda: [1, 4])
    """Integer range."""
    max_length: list[int] | None = dataclasses.field(default_factory=lambda: [64, 128, 256])
    """Tokens per prompt: choices (at most the encoder's position limit)."""
    pooling: list[str] | None = dataclasses.field(default_factory=lambda: ["mean", "cls"])
    """Choices among mean and cls."""
    dropout: list[float] | None = dataclasses.field(default_factory=lambda: [0.0, 0.3])
    """Head dropout: range."""
    warmup_ratio: list[float] | None = dataclasses.field(default_factory=lambda: [0.0, 0.2])
    """Share of steps with linear learning-rate warm-up: range."""
    freeze_layers: list[int] | None = dataclasses.field(default_factory=lambda: [0, 3])
    """Frozen lower encoder layers (plus embeddings): integer range, at most the layer count."""
    tau: list[float] | Literal["auto"] | None = "auto"
    """Label rule tau (SE gap): range. `auto`: [0, 0.5] when the data's label rule uses tau
    (scores data with se_edge and se_cloud), else not searched."""
    judge_margin: list[float] | Literal["auto"] | None = "auto"
    """Judge rule rating margin: range. `auto`: [0, 2] when the data's label rule uses judge
    ratings (scores data with rating_edge and rating_cloud), else not searched."""


def active_space(space: SearchSpace, data: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Searched fields -> their range/choices; label parameters resolved against the data."""
    uses = _label_params_used(data)
    active, skipped = {}, {}
    for name in PARAMS:
        value = getattr(space, name)
        if name in LABEL_PARAMS:
            if value == "auto":
                if not uses[name]:
                    skipped[name] = _why_unused(name, data)
                    continue
                value = LABEL_PARAMS[name]
            elif value is not None and not uses[name]:
                raise ConfigError(f"space.{name} is searched but {_why_unused(name, data)}; "
                                  f"set space.{name} to null or auto")
        if value is not None:
            active[name] = list(value)
    return active, skipped


def _label_params_used(data: Any) -> dict[str, bool]:
    """Which label parameters change the labels of this data under its label rule."""
    report = data.report
    if report.get("format") != "scores":
        return {"tau": False, "judge_margin": False}
    rule = report.get("label_rule")
    has_pair = {"se_edge", "se_cloud"} <= set(data.frame.columns)
    return {"tau": rule == "tau" or (rule == "combined" and has_pair),
            "judge_margin": rule in ("judge", "combined")}


def _why_unused(name: str, data: Any) -> str:
    rule = data.report.get("label_rule")
    return (f"the data ({data.report.get('format')} format, label rule '{rule}') has no label "
            f"rule that uses {name}")


def check_space(active: dict[str, Any], base: RunConfig) -> None:
    """Every range is well formed and every value it allows is a valid setting for the encoder."""
    layers, positions = _encoder_limits(base.model.encoder)
    for name, values in active.items():
        param = PARAMS[name]
        where = f"space.{name}"
        if param.kind == "choice":
            if not values:
                raise ConfigError(f"{where} is an empty list of choices; give at least one")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"{where} lists a choice twice: {values}")
            candidates = values
        else:
            if len(values) != 2:
                raise ConfigError(f"{where} must be a range [low, high]; found {values}")
            low, high = values
            if low > high:
                raise ConfigError(f"{where} is an impossible range: low {low} > high {high}")
            if param.kind == "log" and low <= 0:
                raise ConfigError(f"{where} is searched on a log scale, so low must be > 0; "
                                  f"found {low}")
            candidates = [low, high]
        for value in candidates:
            try:
                override(base, {param.key: value})
            except ConfigError as exc:
                raise ConfigError(f"{where} allows {value!r}, which is not a valid "
                                  f"{param.key}: {exc}") from exc
        if name == "freeze_layers" and max(candidates) > layers:
            raise ConfigError(f"{where} allows freezing {max(candidates)} layers but the encoder "
                              f"{base.model.encoder} has {layers}")
        if name == "max_length" and max(candidates) > positions:
            raise ConfigError(f"{where} allows {max(candidates)} tokens but the encoder "
                              f"{base.model.encoder} takes at most {positions}")


def _encoder_limits(encoder: str) -> tuple[int, int]:
    """(transformer layers, max positions) of the encoder, read from its config only."""
    from transformers import AutoConfig

    from confroute.training.model import resolve_encoder

    source = resolve_encoder(encoder)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not read the config of encoder '{source}': {exc}") from exc
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None) or 0
    positions = getattr(config, "max_position_embeddings", None) or 8192
    return int(layers), int(positions)
