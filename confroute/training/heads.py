"""Heads: a pooled prompt vector [batch, features] -> one logit per model [batch, M].

A router over K routed models and A auxiliary ones has M = K + A outputs, the routed models
first (cheapest first), then the auxiliary ones. Two forms (`ModelConfig.head_form`):

- `per_model`: one output per model, `Linear(features, M)` or an MLP whose last layer has M
  outputs; each model has its own weight vector over the prompt's features.
- `irt`: `IRTHead`, multidimensional item response theory: the prompt gets a discrimination
  vector and a difficulty, each model an ability vector and a level.

Both are linear in each model's own parameters phi_m over a design the models share,
logit_m(x) = design(x) . phi_m + offset(x) (`design`, `model_parameters`, `with_models`), so a
model never trained on is fitted by a logistic regression with the prompt side frozen
(confroute.training.adapt).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from confroute.config import ModelConfig


class IRTHead(nn.Module):
    """logit P(model m adequate | x) = a(x) . theta_m + c_m - b(x).

    The prompt side, one Linear (or MLP) on the pooled features, gives the discrimination vector
    a(x) [D] and the difficulty b(x); each model has an ability vector theta_m [D] and a level
    c_m. This is the multidimensional IRT of MIRT-Router (Song et al., "IRT-Router: Effective
    and Interpretable Multi-LLM Routing via Item Response Theory", ACL 2025: sigmoid(a_q .
    theta_m - b_q), queries as items and LLMs as test-takers; Reckase, "Multidimensional Item
    Response Theory", 2009) with a per-model level added. With D = 1 it holds the classic
    two-parameter logistic model (Birnbaum 1968) in the form sigmoid(alpha_m (theta_m -
    d(x))): a(x) = -d(x), theta_1 = alpha_m, c_m = alpha_m theta_m, b = 0; with a(x) constant,
    the Rasch model. Every model shares the prompt side, so the models' outcomes all train it.

    Shapes: forward(features [batch, width]) -> logits [batch, models].
    """

    def __init__(self, width: int, models: int, dims: int, hidden: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.dims = dims
        self.prompt: nn.Module = nn.Linear(width, dims + 1) if hidden is None else \
            nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(hidden, dims + 1))
        # Random abilities: with theta = 0 every discrimination weight starts without gradient.
        self.ability = nn.Parameter(torch.randn(models, dims) / dims ** 0.5)
        self.level = nn.Parameter(torch.zeros(models))

    def prompt_terms(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a(x) [batch, dims], b(x) [batch]): the prompt's discrimination and difficulty."""
        out = self.prompt(features)
        return out[:, :self.dims], out[:, self.dims]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        a, b = self.prompt_terms(features)
        return a @ self.ability.T + self.level - b[:, None]


def build(cfg: ModelConfig, width: int, outputs: int) -> nn.Module:
    """The head of `cfg` (form and shape) for `outputs` models on `width` pooled features."""
    hidden = cfg.head_hidden if cfg.head == "mlp" else None
    if cfg.head_form == "irt":
        return IRTHead(width, outputs, cfg.irt_dims, hidden, cfg.dropout)
    if hidden is None:
        return nn.Linear(width, outputs)
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                         nn.Linear(hidden, outputs))


def design(head: nn.Module, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X [batch, P], offset [batch]) with head(features)[:, m] = X @ phi_m + offset, where
    phi_m = model_parameters(head)[m]: the features (or the MLP's hidden layer) and a 1 for a
    per-model head (offset 0); [a(x), 1] and -b(x) for an IRT head."""
    ones = features.new_ones(len(features), 1)
    if isinstance(head, IRTHead):
        a, b = head.prompt_terms(features)
        return torch.cat([a, ones], 1), -b
    hidden = features if isinstance(head, nn.Linear) else _layers(head)[:-1](features)
    return torch.cat([hidden, ones], 1), features.new_zeros(len(features))


def _layers(head: nn.Module) -> nn.Sequential:
    if not isinstance(head, nn.Sequential):
        raise TypeError(f"a per-model head is a Linear or a Sequential; found "
                        f"{type(head).__name__}")
    return head


def _last(head: nn.Module) -> nn.Linear:
    layer = head if isinstance(head, nn.Linear) else _layers(head)[-1]
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"a per-model head ends in a Linear layer; found {type(layer).__name__}")
    return layer


def model_parameters(head: nn.Module) -> torch.Tensor:
    """phi [models, P]: each model's own parameters in `design`'s basis (a copy)."""
    if isinstance(head, IRTHead):
        return torch.cat([head.ability, head.level[:, None]], 1).detach().clone()
    last = _last(head)
    return torch.cat([last.weight, last.bias[:, None]], 1).detach().clone()


def with_models(head: nn.Module, phi: torch.Tensor) -> nn.Module:
    """A copy of `head` whose models are the rows of `phi` [models', P], prompt side shared."""
    out = copy.deepcopy(head)
    phi = phi.detach().clone()
    if isinstance(out, IRTHead):
        out.ability = nn.Parameter(phi[:, :-1].contiguous())
        out.level = nn.Parameter(phi[:, -1].contiguous())
        return out
    last = nn.Linear(phi.shape[1] - 1, len(phi))
    last.weight.data.copy_(phi[:, :-1])
    last.bias.data.copy_(phi[:, -1])
    if isinstance(out, nn.Linear):
        return last
    _layers(out)[-1] = last
    return out
