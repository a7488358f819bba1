"""Routing among K models: the cheapest model predicted adequate, else the best predicted one.

Models are ordered cheapest first (a ladder). A router predicts, for each prompt, P(model k's
answer is adequate) for every k: `probs` [n, K]. The policy with thresholds t [K]:

    chosen = the first k (cheapest first) with probs[k] >= t[k];
             if no model clears its threshold, the k with the highest probs[k] (ties: cheaper).

This is the cascade rule of FrugalGPT (Chen, Zaharia, Zou 2023, "FrugalGPT: How to Use Large
Language Models While Reducing Cost and Improving Performance") applied to predicted rather than
observed answers, so one request calls one model. With K = 2 and t = [t, 0] it is the two-model
router "edge iff P(edge adequate) >= t".

Thresholds are calibrated on a sample of prompts, either to a target mean cost per prompt
(`calibrate_cost`: one threshold shared by all models below the top, the largest whose cost fits,
found by bisection since cost can only fall as the threshold falls) or to a target share of
prompts per model (`calibrate_shares`). A request may override thresholds or force a model
(`Policy.decide`). Pure numpy: the runtime can use it without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from confroute.errors import ConfigError, InputError


def choose(probs: np.ndarray, thresholds: np.ndarray | Sequence[float]
           ) -> tuple[np.ndarray, np.ndarray]:
    """(chosen model index [n], whether it cleared its threshold [n]) for `probs` [n, K]."""
    probs = _probs(probs)
    t = np.asarray(thresholds, dtype=float)
    if t.shape != (probs.shape[1],) or np.isnan(t).any():
        raise ConfigError(f"need one threshold per model ({probs.shape[1]}); found {t.tolist()}")
    cleared = probs >= t[None, :]
    any_cleared = np.asarray(cleared.any(axis=1))
    index = np.where(any_cleared, cleared.argmax(axis=1), probs.argmax(axis=1))
    return index, any_cleared


def choose_utility(probs: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    """Chosen model index [n]: argmax_k probs[k] - lam x costs[k] (ties: the cheaper), the
    "willingness to pay" rule of RouterBench (Hu et al. 2024). `costs` [n, K] in USD, `lam` in
    adequacy per USD: 0 picks the best predicted model, larger values cheaper ones. Unlike the
    threshold rule it never pays for a model predicted no better than a cheaper one."""
    probs = _probs(probs)
    costs = np.asarray(costs, dtype=float)
    if costs.shape != probs.shape:
        raise ConfigError(f"costs must be [n, K] like probs {probs.shape}; found {costs.shape}")
    return (probs - lam * costs).argmax(axis=1)


def shared_thresholds(t: float, k: int) -> np.ndarray:
    """[t, ..., t, 0]: one threshold for every model below the top; the top always clears."""
    return np.r_[np.full(k - 1, t), 0.0]


def calibrate_cost(probs: np.ndarray, costs: np.ndarray, target: float) -> np.ndarray:
    """Thresholds [K] (shared form) whose mean cost per prompt on `probs` [n, K] with `costs`
    [n, K] (USD) is at most `target`, with the largest such threshold (the most quality).

    Raises ConfigError when even routing every prompt to the cheapest model costs more.
    """
    probs = _probs(probs)
    costs = np.asarray(costs, dtype=float)
    if costs.shape != probs.shape:
        raise ConfigError(f"costs must be [n, K] like probs {probs.shape}; found {costs.shape}")
    target = _target_cost(target)
    k = probs.shape[1]

    def mean_cost(t: float) -> float:
        index, _ = choose(probs, shared_thresholds(t, k))
        return float(costs[np.arange(len(index)), index].mean())

    candidates = np.r_[np.unique(probs[:, :-1])[::-1], -np.inf]  # high threshold = high cost
    if mean_cost(-np.inf) > target + 1e-15:
        raise ConfigError(f"target cost {target:.6g} USD per prompt is below the cheapest "
                          f"model's ({mean_cost(-np.inf):.6g}); raise it")
    if mean_cost(np.inf) <= target:
        return shared_thresholds(np.inf, k)
    lo, hi = 0, len(candidates) - 1  # cost(candidates[hi]) <= target < cost(inf)
    while lo < hi:  # the first (highest) candidate whose cost fits
        mid = (lo + hi) // 2
        if mean_cost(candidates[mid]) <= target:
            hi = mid
        else:
            lo = mid + 1
    return shared_thresholds(float(candidates[lo]), k)


def calibrate_shares(probs: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """Thresholds [K] sending about `shares[k]` of the prompts in `probs` [n, K] to model k.

    Cheapest first: model k takes the prompts left over by cheaper models with the highest
    probs[k]; the top model takes the rest (its threshold is 0). Ties at a threshold can take a
    few more prompts than asked. Raises ConfigError unless shares are K numbers >= 0 summing to 1.
    """
    probs = _probs(probs)
    n, k = probs.shape
    try:
        target = np.asarray(shares, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"shares must be {k} numbers >= 0 summing to 1; found {shares!r}") \
            from exc
    if target.shape != (k,) or not np.isfinite(target).all() or (target < 0).any() \
            or not abs(target.sum() - 1) <= 1e-6:
        raise ConfigError(f"shares must be {k} numbers >= 0 summing to 1; found "
                          f"{target.tolist()}")
    thresholds = np.zeros(k)
    left = np.ones(n, dtype=bool)
    for model in range(k - 1):
        take = int(round(target[model] * n))
        values = np.sort(probs[left, model])[::-1]
        if take == 0 or len(values) == 0:
            thresholds[model] = np.inf
            continue
        thresholds[model] = values[min(take, len(values)) - 1]
        left &= probs[:, model] < thresholds[model]
    return thresholds


@dataclasses.dataclass
class Decision:
    """One request's route: the model, its position in the ladder (0 = cheapest), and why."""

    model: str
    model_index: int
    reason: str
    probabilities: dict[str, float]
    thresholds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Rule = Literal["threshold", "utility"]
"""`threshold`: the cheapest model predicted adequate (`choose`); `utility`: the highest
P - lambda x cost (`choose_utility`)."""


def calibrate_lambda(probs: np.ndarray, costs: np.ndarray, target: float) -> float:
    """The smallest lambda >= 0 (adequacy per USD) whose utility routing of `probs` [n, K] with
    `costs` [n, K] (USD) costs at most `target` USD per prompt on average, i.e. the most quality
    within the budget. Mean cost can only fall as lambda grows; found by bisection to a relative
    1e-9. Raises ConfigError when even the cheapest model costs more than `target`."""
    probs = _probs(probs)
    costs = np.asarray(costs, dtype=float)
    if costs.shape != probs.shape:
        raise ConfigError(f"costs must be [n, K] like probs {probs.shape}; found {costs.shape}")

    target = _target_cost(target)

    def mean_cost(lam: float) -> float:
        index = choose_utility(probs, costs, lam)
        return float(costs[np.arange(len(index)), index].mean())

    cheapest = float(costs.min(axis=1).mean())
    if cheapest > target + 1e-15:
        raise ConfigError(f"target cost {target:.6g} USD per prompt is below the cheapest "
                          f"model's ({cheapest:.6g}); raise it")
    if mean_cost(0.0) <= target:
        return 0.0
    hi = 1.0 / max(float(costs.mean()), 1e-12)
    for _ in range(200):  # the gap in P is at most 1, so lambda above 1 / min cost gap suffices
        if mean_cost(hi) <= target:
            break
        hi *= 2
    lo = 0.0
    for _ in range(200):
        if hi - lo <= 1e-9 * hi:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if mean_cost(mid) <= target else (mid, hi)
    return hi


@dataclasses.dataclass
class Policy:
    """Named models (cheapest first) and how to pick one: the `threshold` rule with one threshold
    per model, or the `utility` rule with `lambda_per_usd`; routes one request or many."""

    models: list[str]
    thresholds: np.ndarray
    rule: Rule = "threshold"
    lambda_per_usd: float = 0.0
    """utility rule: adequacy given up per USD saved (0: the best predicted model)."""

    def __post_init__(self) -> None:
        self.thresholds = np.asarray(self.thresholds, dtype=float)
        if len(self.models) < 2 or self.thresholds.shape != (len(self.models),):
            raise ConfigError(f"a policy needs >= 2 models and one threshold each; found "
                              f"{len(self.models)} model(s), thresholds "
                              f"{self.thresholds.tolist()}")
        if self.rule not in ("threshold", "utility"):
            raise ConfigError(f"unknown rule '{self.rule}'; choose threshold or utility")
        if not (np.isfinite(self.lambda_per_usd) and self.lambda_per_usd >= 0):
            raise ConfigError(f"lambda_per_usd must be a number >= 0; found "
                              f"{self.lambda_per_usd}")

    def route(self, probs: np.ndarray, costs: np.ndarray | None = None) -> np.ndarray:
        """Chosen model index for each row of `probs` [n, K] (`costs` [n, K] USD: utility)."""
        if self.rule == "utility":
            if costs is None:
                raise InputError("the utility rule needs each prompt's costs [n, K]")
            return choose_utility(probs, costs, self.lambda_per_usd)
        return choose(probs, self.thresholds)[0]

    def decide(self, probs: Sequence[float], thresholds: Mapping[str, float] | None = None,
               model: str | None = None, costs: Sequence[float] | None = None,
               lambda_per_usd: float | None = None) -> Decision:
        """Route one request with predicted adequacies `probs` [K]; `thresholds` overrides some
        models' thresholds (threshold rule) or `lambda_per_usd` the lambda (utility rule) for this
        request only, `model` forces a model. The utility rule needs the request's `costs` [K]
        (USD). Raises InputError for an unknown model, an override of the other rule, or
        missing costs."""
        p = _probs(np.asarray(probs, dtype=float)[None, :])[0]
        if len(p) != len(self.models):
            raise InputError(f"{len(p)} probabilities for {len(self.models)} models")
        if self.rule == "utility" and thresholds:
            raise InputError("this router uses the utility rule (P - lambda x cost): override "
                             "lambda_per_usd, not thresholds")
        if self.rule == "threshold" and lambda_per_usd is not None:
            raise InputError("this router uses the threshold rule: override thresholds, not "
                             "lambda_per_usd")
        if thresholds is not None and not isinstance(thresholds, Mapping):
            raise InputError(f"thresholds must map model names to thresholds, e.g. "
                             f"{{'{self.models[0]}': 0.8}}; found {type(thresholds).__name__}")
        t = self.thresholds.copy()
        for name, value in (thresholds or {}).items():
            if name not in self.models:
                raise InputError(f"threshold override for unknown model '{name}'; models: "
                                 f"{', '.join(self.models)}")
            t[self.models.index(name)] = float(value)
        named_p = dict(zip(self.models, p.tolist(), strict=True))
        named_t = dict(zip(self.models, t.tolist(), strict=True))
        if model is not None:
            if model not in self.models:
                raise InputError(f"unknown model '{model}'; models: {', '.join(self.models)}")
            return Decision(model, self.models.index(model), "forced by the request",
                            named_p, named_t)
        if self.rule == "utility":
            return self._utility(p, costs, lambda_per_usd, named_p, named_t)
        index, cleared = choose(p[None, :], t)
        i = int(index[0])
        if cleared[0]:
            below = "" if i == 0 else "; every cheaper model was below its threshold"
            reason = (f"cheapest model predicted adequate: P = {p[i]:.3f} >= threshold "
                      f"{t[i]:.3f}{below}")
        else:
            reason = (f"no model cleared its threshold; highest predicted adequacy "
                      f"P = {p[i]:.3f}")
        return Decision(self.models[i], i, reason, named_p, named_t)

    def _utility(self, p: np.ndarray, costs: Sequence[float] | None, lam: float | None,
                 named_p: dict[str, float], named_t: dict[str, float]) -> Decision:
        if costs is None or np.shape(costs) != p.shape:
            raise InputError(f"the utility rule needs the request's cost for each of the "
                             f"{len(p)} models")
        if lam is None:
            lam = self.lambda_per_usd
        elif isinstance(lam, bool) or not isinstance(lam, int | float | np.floating | np.integer):
            raise InputError(f"lambda_per_usd must be a number >= 0; found {lam!r}")
        if not (np.isfinite(lam) and lam >= 0):
            raise InputError(f"lambda_per_usd must be a number >= 0; found {lam}")
        c = np.asarray(costs, dtype=float)
        i = int(choose_utility(p[None, :], c[None, :], lam)[0])
        reason = (f"highest P - lambda x cost: P = {p[i]:.3f}, cost {c[i]:.3g} USD, lambda "
                  f"{lam:.4g} per USD")
        return Decision(self.models[i], i, reason, named_p, named_t)


def _target_cost(target: Any) -> float:
    """`target` as a finite float >= 0 (USD per prompt), or ConfigError."""
    if isinstance(target, bool) or not isinstance(target, int | float | np.floating | np.integer) \
            or not (np.isfinite(target) and target >= 0):
        raise ConfigError(f"the target cost must be a number >= 0 (USD per prompt); found "
                          f"{target!r}")
    return float(target)


def _probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] == 0:
        raise InputError(f"probabilities must be [prompts, models >= 2]; found {probs.shape}")
    if not np.isfinite(probs).all():
        raise InputError("probabilities must be finite numbers")
    return probs
