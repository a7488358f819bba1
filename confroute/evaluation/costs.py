"""API cost in USD of answering each prompt with the edge or the cloud model.

Cost of a prompt under a model = input tokens x its input price + output tokens x its output
price (prices per million tokens, a setting). Output tokens that are unknown count as zero, and
the report says so (the ground truth's `info["tokens"]` names where the counts come from).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from confroute.errors import ConfigError
from confroute.evaluation.groundtruth import GroundTruth


@dataclasses.dataclass
class CostConfig:
    """USD per million tokens. Defaults: list prices when the RouteLLM outcomes were collected
    (gpt-4-1106-preview at OpenAI; Mixtral-8x7B-Instruct at Together AI); set your own."""

    edge_input_per_mtok: float = 0.6
    edge_output_per_mtok: float = 0.6
    cloud_input_per_mtok: float = 10.0
    cloud_output_per_mtok: float = 30.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"cost.{field.name} must be a price >= 0 (USD per million "
                                  f"tokens); found {value!r}")


def per_prompt_costs(truth: GroundTruth, cfg: CostConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """(edge USD, cloud USD) per prompt, or None when the ground truth has no token counts."""
    if truth.tokens_in is None:
        return None
    zeros = np.zeros(len(truth))
    tin = np.nan_to_num(truth.tokens_in)
    out_edge = zeros if truth.tokens_out_edge is None else np.nan_to_num(truth.tokens_out_edge)
    out_cloud = zeros if truth.tokens_out_cloud is None else np.nan_to_num(truth.tokens_out_cloud)
    edge = (tin * cfg.edge_input_per_mtok + out_edge * cfg.edge_output_per_mtok) / 1e6
    cloud = (tin * cfg.cloud_input_per_mtok + out_cloud * cfg.cloud_output_per_mtok) / 1e6
    return edge, cloud
