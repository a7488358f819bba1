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
    # encoder (a token lookup and a mean, no transformer at inference), frozen, with a linear
    # head; its frozen features are what bench/routers.py scores as "model2vec static".
    "micro": {"model.family": "static", "model.layers": None, "model.freeze_encoder": True,
              "model.head": "linear",
              "train.head_learning_rate": 1e-2, "train.max_epochs": 5},
    # Today's full-depth router (all six MiniLM layers, final-layer mean), fine-tuned.
    "full": {"model.family": "transformer", "model.layers": None, "model.pool_layers": [-1]},
}


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset `name` (a copy); ConfigError naming the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
