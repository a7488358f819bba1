"""Routing among K >= 2 models: the one decision, made here for the runtime, the CLI and serve.

Models are ordered cheapest first (a ladder); a pair (edge, cloud) is the smallest one. A router
predicts, for each prompt, P(model k's answer is adequate) for every k: `probs` [n, K]. Two
rules pick a model:

    threshold: the first k (cheapest first) with probs[k] >= t[k];
               if no model clears its threshold, the k with the highest probs[k] (ties: cheaper)
    utility:   the k with the highest probs[k] - lambda x cost[k] (USD; ties: cheaper)

The threshold rule is the cascade rule of FrugalGPT (Chen, Zaharia, Zou 2023, "FrugalGPT: How
to Use Large Language Models While Reducing Cost and Improving Performance") applied to
predicted rather than observed answers, so one request calls one model; the utility rule is
RouterBench's "willingness to pay" (Hu et al. 2024).

A pair is K = 2 with t = [t, 0] (the cloud always clears). Its two-model view is the score,
P(cloud needed) = P(the cheapest model is not adequate), the route (edge: the cheapest model was
chosen, else cloud) and the threshold, the cheapest model's threshold as a P(cloud needed) cut:
route to the cloud iff score >= threshold. A pair trained on a "cloud needed" label predicts
that score itself (its head is one logit), so its policy keeps the threshold in that form
(`Policy.cut`) and compares the score itself: P(edge adequate) = 1 - score rounds in float64
(scores within 2^-53 of each other can share one value of 1 - score), so comparing it would
move prompts at the boundary. A score equal to the threshold goes to the cloud, so a threshold
calibrated to a real score (the lowest sent to the cloud) sends exactly the calibrated share.

Thresholds are calibrated on a sample of prompts (`calibrate`): to target shares of prompts
per model (tie-aware: prompts with equal values always take the same model, so the nearest
achievable shares are chosen) or to a target mean cost per prompt (threshold rule: one
threshold shared by all models below the top, the largest whose cost fits, by bisection, since
cost can only fall as the threshold falls; utility rule: the smallest lambda that fits). A
request may override the rule's parameter or force a model (`Policy.decide`). Pure numpy: the
runtime uses it without torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from confroute import arguments as check
from confroute.errors import ConfigError, InputError

__all__ = ["Decision", "Policy", "Route", "Rule", "check_lambda", "check_threshold", "choose",
           "choose_utility"]

Rule = Literal["threshold", "utility"]
"""`threshold`: the cheapest model predicted adequate (`choose`); `utility`: the highest
P - lambda x cost (`choose_utility`)."""
Route = Literal["edge", "cloud"]
FORCED = "forced by the request"
NO_TEXT = "no text to score (user turns hold only images, audio or files)"


def check_threshold(value: Any, name: str = "threshold") -> float:
    """`value` as a float in [0, 1] (numpy scalars too), or InputError (NaN, bools, text)."""
    return float(check.number(value, name, low=0.0, high=1.0, error=InputError))


def choose(probs: np.ndarray, thresholds: np.ndarray | Sequence[float],
           scores: np.ndarray | None = None, cut: float | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(chosen model index [n], whether it cleared its threshold [n]) for `probs` [n, K].

    With `cut` (a P(cloud needed) threshold), the cheapest model clears iff its score is below
    it, `scores` [n] (default 1 - probs[:, 0]) instead of probs[:, 0] >= thresholds[0].
    Raises InputError / ConfigError naming a bad argument.
    """
    probs = check_probs(probs)
    t = _check_thresholds(thresholds, probs.shape[1])
    if cut is not None:
        cut = check_threshold(cut, "cut")
        scores = None if scores is None else check_scores(scores, len(probs))
    return _choose(probs, t, scores, cut)


def _choose(probs: np.ndarray, t: np.ndarray, scores: np.ndarray | None, cut: float | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """`choose` on arguments already checked (a policy's own, per request)."""
    cleared = probs >= t[None, :]
    if cut is not None:
        cleared[:, 0] = (1.0 - probs[:, 0] if scores is None else scores) < cut
    any_cleared = np.asarray(cleared.any(axis=1))
    index = np.where(any_cleared, cleared.argmax(axis=1), probs.argmax(axis=1))
    return index, any_cleared


def choose_utility(probs: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    """Chosen model index [n]: argmax_k probs[k] - lam x costs[k] (ties: the cheaper). `costs`
    [n, K] in USD, `lam` in adequacy per USD: 0 picks the best predicted model, larger values
    cheaper ones (a negative one, where an evaluation sweeps past 0, pricier ones). Unlike the
    threshold rule it never pays for a model predicted no better than a cheaper one. Raises
    InputError / ConfigError for bad probabilities, costs or `lam`."""
    probs = check_probs(probs)
    costs = check_costs(costs, probs)
    lam = check.number(lam, "lam", unit="adequacy per USD", error=InputError)
    return (probs - lam * costs).argmax(axis=1)


def shared_thresholds(t: float, k: int) -> np.ndarray:
    """[t, ..., t, 0]: one threshold for every model below the top; the top always clears."""
    return np.r_[np.full(k - 1, t), 0.0]


@dataclasses.dataclass(frozen=True)
class Decision:
    """One request's route: the model, its position in the ladder (0 = cheapest), and why.

    K-model fields: `model`, `model_index`, `reason`, `probabilities` (P(adequate) by model),
    `thresholds` (threshold rule) or `lambda_per_usd` (utility rule). The two-model view of a
    pair: `score`, `route` and `threshold` (see the module docstring); `score` and `threshold`
    are the numbers the decision compared, never recomputed from `probabilities`.
    """

    model: str
    model_index: int
    reason: str
    probabilities: dict[str, float]
    """Empty when nothing was scored (a conversation without text)."""
    thresholds: dict[str, float] | None = None
    """Threshold rule: each model's threshold (it clears with P >= it; None: never); None under
    the utility rule, which uses none."""
    lambda_per_usd: float | None = None
    """Utility rule: the lambda used (adequacy per USD); None under the threshold rule."""
    models: tuple[str, ...] = ()
    score: float | None = None
    """Pairs: P(cloud needed), the router's own number; None when nothing was scored."""
    threshold: float | None = None
    """Pairs under the threshold rule: the cut the score was compared with."""

    @property
    def route(self) -> Route:
        """The two-model view: "edge" when the cheapest model was chosen, else "cloud"."""
        return "edge" if self.model_index == 0 else "cloud"

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON: for a pair the two-model fields (score, route, threshold)
        first, then the K-model ones; a field the rule did not use is left out, and a threshold
        that is not finite (a model calibrated to take no prompts) is null."""
        view = {"score": self.score, "route": self.route, "threshold": self.threshold} \
            if len(self.models) == 2 else {}
        out = {**view, "model": self.model, "model_index": self.model_index,
               "reason": self.reason, "probabilities": dict(self.probabilities),
               "thresholds": None if self.thresholds is None else
               {k: v if math.isfinite(v) else None for k, v in self.thresholds.items()},
               "lambda_per_usd": self.lambda_per_usd}
        return {k: v for k, v in out.items() if v is not None}


@dataclasses.dataclass
class Policy:
    """Named models (cheapest first) and how to pick one: the `threshold` rule with one threshold
    per model, or the `utility` rule with `lambda_per_usd`; routes one request or many."""

    models: list[str]
    thresholds: np.ndarray
    """[K] P(model k adequate) thresholds (threshold rule); with `cut`, [0] shows 1 - cut."""
    rule: Rule = "threshold"
    lambda_per_usd: float = 0.0
    """utility rule: adequacy given up per USD saved (0: the best predicted model)."""
    cut: float | None = None
    """The cheapest model's threshold as a P(cloud needed) cut, for a pair whose router predicts
    that probability (the score): the cheapest model is chosen iff score < cut."""

    def __post_init__(self) -> None:
        self.models = check.names(self.models, "models", at_least=2)
        self.thresholds = check.array(self.thresholds, "thresholds", 1, low=0.0, high=1.0).copy()
        if self.thresholds.shape != (len(self.models),):
            raise ConfigError(f"thresholds must be one per model ({len(self.models)}); found "
                              f"{self.thresholds.tolist()}")
        check.choice(self.rule, "rule", ("threshold", "utility"))
        self.lambda_per_usd = check.number(self.lambda_per_usd, "lambda_per_usd", low=0.0,
                                           unit="adequacy per USD")
        if self.cut is not None:
            self.cut = check.number(self.cut, "cut", low=0.0, high=1.0)
            self.thresholds[0] = 1.0 - self.cut

    @property
    def pair(self) -> bool:
        return len(self.models) == 2

    @property
    def threshold(self) -> float | None:
        """A pair under the threshold rule: the cheapest model's threshold as a P(cloud needed)
        cut (`cut`, else 1 - thresholds[0]); None otherwise."""
        if not self.pair or self.rule != "threshold":
            return None
        return self.cut if self.cut is not None else 1.0 - float(self.thresholds[0])

    def route(self, probs: np.ndarray, costs: np.ndarray | None = None,
              scores: np.ndarray | None = None) -> np.ndarray:
        """Chosen model index for each row of `probs` [n, K] (`costs` [n, K] USD: utility;
        `scores` [n]: the router's P(cloud needed), for a policy with a `cut`)."""
        if self.rule == "utility":
            if costs is None:
                raise InputError("the utility rule needs each prompt's costs [n, K]")
            return choose_utility(probs, costs, self.lambda_per_usd)
        return choose(probs, self.thresholds, scores, self.cut)[0]

    def overridden(self, thresholds: Mapping[str, Any] | None = None,
                   threshold: Any = None) -> Policy:
        """A copy with some models' `thresholds` (P(adequate) >= t) or, for a pair, the two-model
        `threshold` (a P(cloud needed) cut) replaced; InputError for an unknown model, a value
        not in [0, 1], a parameter of the rule this policy does not use, or both for the
        cheapest model."""
        if thresholds is None and threshold is None:
            return self
        if self.rule == "utility":
            raise InputError("this router uses the utility rule (P - lambda x cost): override "
                             "lambda_per_usd, not thresholds")
        if thresholds is not None and not isinstance(thresholds, Mapping):
            raise InputError(f"thresholds must map model names to thresholds, e.g. "
                             f"{{'{self.models[0]}': 0.8}}; found {type(thresholds).__name__}")
        t, cut = self.thresholds.copy(), self.cut
        for name, value in (thresholds or {}).items():
            if name not in self.models:
                raise InputError(f"thresholds: unknown model '{name}'; models: "
                                 f"{', '.join(self.models)}")
            try:
                t[self.models.index(name)] = check_threshold(value)
            except InputError as exc:
                raise InputError(f"thresholds.{name}: {exc}") from None
            cut = None if name == self.models[0] else cut
        if threshold is not None:
            if not self.pair:
                raise InputError(f"one threshold is for two models; this router routes among "
                                 f"{', '.join(self.models)}: override thresholds={{model: t}}")
            if self.models[0] in (thresholds or {}):
                raise InputError(f"give threshold or thresholds.{self.models[0]}, not both")
            cut = check_threshold(threshold)
        return dataclasses.replace(self, thresholds=t, cut=cut)

    def decide(self, probs: Sequence[float] | np.ndarray,
               thresholds: Mapping[str, float] | None = None, model: str | None = None,
               costs: Sequence[float] | np.ndarray | None = None,
               lambda_per_usd: float | None = None, *, score: float | None = None,
               threshold: float | None = None) -> Decision:
        """Route one request with predicted adequacies `probs` [K] and, for a pair, its `score`
        (P(cloud needed), default 1 - probs[0]). For this request only: `thresholds` (some
        models') or `threshold` (a pair's cut) override the threshold rule, `lambda_per_usd` the
        utility rule's lambda, `model` forces a model. The utility rule needs the request's
        `costs` [K] (USD). Raises InputError for an unknown model, an override of the other
        rule, or missing costs."""
        p = check.array(probs, "probs", 1, low=0.0, high=1.0, error=InputError)
        if len(p) != len(self.models):
            raise InputError(f"probs must be one P(adequate) per model ({len(self.models)}); "
                             f"found {len(p)}")
        score = check.number(score, "score", low=0.0, high=1.0, optional=True, error=InputError)
        self.check_request(model, lambda_per_usd)
        policy = self.overridden(thresholds, threshold)
        s = float(1.0 - p[0] if score is None else score)
        if model is not None:
            return policy._forced(model, p, s, lambda_per_usd)
        if self.rule == "utility":
            return policy._utility(p, s, costs, lambda_per_usd)
        index, cleared = _choose(p[None, :], policy.thresholds, np.array([s]), policy.cut)
        i = int(index[0])
        return policy._decision(i, policy._reason(i, bool(cleared[0]), p, s), p, s)

    def check_request(self, model: Any = None, lambda_per_usd: Any = None) -> None:
        """Check a request's forced `model` (one of `models`) and `lambda_per_usd` (a number >= 0,
        utility rule only) before anything is scored; InputError naming the argument."""
        if model is not None and model not in self.models:
            raise InputError(f"unknown model {check.shown(model)}; models: "
                             f"{', '.join(self.models)}")
        if lambda_per_usd is not None:
            if self.rule == "threshold":
                raise InputError("this router uses the threshold rule: override thresholds, "
                                 "not lambda_per_usd")
            check_lambda(lambda_per_usd)

    def without_text(self, model: str | None = None) -> Decision:
        """A request with nothing to score (no text in its user turns): the forced `model`, else
        the most expensive one, by rule. InputError for an unknown model."""
        if model is not None:
            return self._forced(model, None, None, None)
        top = self.models[-1]
        return self._decision(len(self.models) - 1, f"{NO_TEXT}: {top}, the top model, by rule",
                              None, None)

    def _forced(self, model: str, p: np.ndarray | None, s: float | None,
                lam: float | None) -> Decision:
        self.check_request(model)
        return self._decision(self.models.index(model), FORCED, p, s, lam)

    def _reason(self, i: int, cleared: bool, p: np.ndarray, s: float) -> str:
        if not cleared:
            return f"no model cleared its threshold; highest predicted adequacy P = {p[i]:.3f}"
        if self.cut is not None and i <= 1:
            return f"score {s:.4f} {'<' if i == 0 else '>='} threshold {self.cut:.4f}"
        below = "" if i == 0 else "; every cheaper model was below its threshold"
        return (f"cheapest model predicted adequate: P = {p[i]:.3f} >= threshold "
                f"{self.thresholds[i]:.3f}{below}")

    def _utility(self, p: np.ndarray, s: float, costs: Sequence[float] | np.ndarray | None,
                 lam: float | None) -> Decision:
        if costs is None:
            raise InputError(f"the utility rule needs the request's costs, one per model "
                             f"({len(p)}, USD)")
        c = check.array(costs, "costs", 1, low=0.0, error=InputError)
        if c.shape != p.shape:
            raise InputError(f"costs must be one per model ({len(p)}, USD); found {len(c)}")
        lam = self.lambda_per_usd if lam is None else check_lambda(lam)
        i = int(np.argmax(p - lam * c))  # choose_utility's rule on checked arguments
        reason = (f"highest P - lambda x cost: P = {p[i]:.3f}, cost {c[i]:.3g} USD, lambda "
                  f"{lam:.4g} per USD")
        return self._decision(i, reason, p, s, lam)

    def _decision(self, i: int, reason: str, p: np.ndarray | None, s: float | None,
                  lam: float | None = None) -> Decision:
        threshold_rule = self.rule == "threshold"
        return Decision(
            self.models[i], i, reason,
            {} if p is None else dict(zip(self.models, p.tolist(), strict=True)),
            dict(zip(self.models, self.thresholds.tolist(), strict=True)) if threshold_rule
            else None,
            None if threshold_rule else (self.lambda_per_usd if lam is None else lam),
            tuple(self.models), s if self.pair else None, self.threshold)


def check_lambda(value: Any, name: str = "lambda_per_usd") -> float:
    """`value` as a finite float >= 0 (adequacy per USD), or InputError."""
    return float(check.number(value, name, low=0.0, unit="adequacy per USD", error=InputError))


def check_costs(costs: Any, probs: np.ndarray) -> np.ndarray:
    """`costs` as a finite float array >= 0 (USD) shaped like `probs` [n, K], or ConfigError."""
    costs = check.array(costs, "costs", 2, low=0.0)
    if costs.shape != probs.shape:
        raise ConfigError(f"costs must be [n, K] like probs {probs.shape}; found {costs.shape}")
    return costs


def check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """`probs` as a float array [n >= 1, K >= 2] of probabilities in [0, 1], or InputError."""
    probs = check.array(probs, name, 2, low=0.0, high=1.0, error=InputError)
    if probs.shape[1] < 2 or probs.shape[0] == 0:
        raise InputError(f"{name} must be [prompts >= 1, models >= 2]; found {probs.shape}")
    return probs


def check_scores(scores: Any, n: int) -> np.ndarray:
    """`scores` as [n] P(cloud needed) in [0, 1], or InputError."""
    scores = check.array(scores, "scores", 1, low=0.0, high=1.0, error=InputError)
    if len(scores) != n:
        raise InputError(f"scores must be one per prompt ({n}); found {len(scores)}")
    return scores


def _check_thresholds(thresholds: Any, k: int) -> np.ndarray:
    """[K] thresholds: numbers, not NaN (an infinity: the model never / always clears)."""
    raw = np.asarray(thresholds) if not isinstance(thresholds, str | bytes) else None
    if raw is None or raw.dtype.kind not in "iuf" or raw.shape != (k,) or np.isnan(raw).any():
        raise ConfigError(f"thresholds must be one number per model ({k}); found "
                          f"{check.shown(thresholds)}")
    return raw.astype(float, copy=False)
