"""Named presets: sets of config overrides for the ends of the measured quality/latency front.

A preset is applied on top of the defaults (or a --config YAML) and before the user's own flags
and --set values, so `confroute train --preset micro --set train.max_epochs=1` works. The figures
behind each choice are in bench/routers.py's table (bench/results/routers.md).
"""

from __future__ import annotations

from typing import Any

from confroute.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # The fastest router, for weak edge hardware: a model2vec static table distilled from the
    # encoder (a token lookup and a mean, no transformer at inference) with a linear head, the
    # table fine-tuned with it (bench/routers.py scores its frozen features as "model2vec
    # static"). Fine-tuning the table costs nothing at inference and raised validation AUROC
    # over the frozen table on every dataset tried (5 epochs, lr 1e-2; the source or category
    # prior's in brackets): smollm2-uncertainty 0.769 -> 0.804 [0.742], routellm-judge (20,000
    # rows) 0.629 -> 0.655 [0.532], and the macro AUROC of K heads on MMLU-Pro: Llama-3.1
    # 8B/70B 0.620 -> 0.637 [0.633], Mistral/Mixtral 0.655 -> 0.685 [0.655], Phi-3-mini/Gemini
    # 0.652 -> 0.680 [0.670], Llama-2 7B/13B/70B 0.670 -> 0.683 [0.670].
    "micro": {"model.family": "static", "model.layers": None, "model.freeze_encoder": False,
              "model.head": "linear", "train.learning_rate": 1e-2,
              "train.head_learning_rate": 1e-2, "train.max_epochs": 5},
    # Today's full-depth router (all six MiniLM layers, final-layer mean), fine-tuned.
    "full": {"model.family": "transformer", "model.layers": None, "model.pool_layers": [-1]},
}


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset `name` (a copy); ConfigError naming the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
