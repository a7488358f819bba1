"""Calibrating a routing policy (`confroute.policy`) on a sample of prompts, for any K.

Two targets: a share of the prompts per model (the threshold rule), or a mean cost per prompt in
USD (either rule). A calibration holds only for traffic like the calibration prompts: calibrate
on a sample of real traffic, at least SMALL_SAMPLE prompts.

Shares are tie-aware: prompts with equal values always take the same model, so only some shares
are achievable (cutting between two distinct values, everything, or nothing); for each model,
cheapest first, the achievable count nearest the request is taken from the prompts cheaper
models left (the larger count when two are equally near: the cheaper model takes more). A
threshold is a real value of the calibration prompts (the lowest a model takes), so routing the
same prompts gives exactly the achieved shares. For a pair whose router predicts P(cloud needed)
(`scores`) the cheapest model's threshold is a cut on those scores (`Policy.cut`): the
two-model calibration to a cloud fraction F is the K = 2 case, shares [1 - F, F].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from confroute import arguments as check
from confroute.errors import ConfigError
from confroute.policy import (
    Policy,
    Rule,
    check_costs,
    check_probs,
    check_scores,
    choose,
    choose_utility,
    shared_thresholds,
)

__all__ = ["SMALL_SAMPLE", "Calibration", "calibrate", "calibrate_cost", "calibrate_lambda",
           "calibrate_shares", "check_fraction", "check_shares"]

SMALL_SAMPLE = 100
"""Calibrating on fewer prompts than this warns: each prompt moves a share by > 1%."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A calibrated policy and what it achieves on the prompts it was calibrated on."""

    policy: Policy
    requested: dict[str, Any]
    """{"shares": {model: share}} or {"target_cost": USD per prompt}."""
    shares: dict[str, float]
    """Share of the calibration prompts each model gets."""
    mean_cost: float | None
    """USD per prompt on the calibration prompts; None when the models have no prices."""
    prompts: int
    distinct_scores: int
    """Prompts with distinct values (ties always take the same route)."""
    achieved: float
    """The share of the calibration prompts sent past the cheapest model (the cloud share)."""
    warnings: tuple[str, ...] = ()

    @property
    def threshold(self) -> float | None:
        """A pair under the threshold rule: its threshold as a P(cloud needed) cut."""
        return self.policy.threshold


def check_fraction(value: Any) -> float:
    """`value` as a float in [0, 1], or ConfigError (NaN, infinities, strings, bools refused)."""
    return float(check.number(value, "cloud_fraction", low=0.0, high=1.0,
                              unit="the share of prompts sent to the cloud"))


def calibrate(policy: Policy, probs: np.ndarray, *, scores: np.ndarray | None = None,
              costs: np.ndarray | None = None, shares: Sequence[float] | None = None,
              target_cost: float | None = None, rule: Rule | None = None) -> Calibration:
    """Calibrate `policy`'s `rule` (default: its own) on `probs` [n, K] (P(model k adequate))
    to `shares` (K numbers summing to 1, threshold rule) or to `target_cost` (USD per prompt
    on average, with `costs` [n, K] USD). `scores` [n]: a pair's own P(cloud needed), whose
    threshold is then calibrated as a cut on them.

    Thresholds are capped at 1.0 (a model that takes nothing). Raises ConfigError for neither
    or both targets, shares with the utility rule, a cost target without prices or below the
    cheapest model's cost, bad shares; InputError for bad probabilities.
    """
    check.instance(policy, "policy", Policy, "a confroute.policy.Policy")
    probs = check_probs(probs)
    scores = None if scores is None else check_scores(scores, len(probs))
    costs = None if costs is None else check_costs(costs, probs)
    rule = check.choice(rule, "rule", ("threshold", "utility"), optional=True) or policy.rule
    target_cost = None if target_cost is None else _target_cost(target_cost)
    if (target_cost is None) == (shares is None):
        raise ConfigError("give exactly one of a target cost (USD per prompt) or shares")
    if rule == "utility" and shares is not None:
        raise ConfigError("shares set thresholds (the threshold rule); the utility rule is "
                          "calibrated to a cost: give a target cost, or the threshold rule")
    if target_cost is not None and costs is None:
        raise ConfigError(f"this artifact has no prices for its models ({', '.join(policy.models)}"
                          "), and a cost target or the utility rule needs them: export it with "
                          "--prices FILE (each model's input_per_mtok and output_per_mtok), or "
                          "calibrate to shares")
    new = dataclasses.replace(policy, rule=rule)
    if shares is not None:
        thresholds, cut = share_thresholds(probs, shares, scores)
        new = dataclasses.replace(new, thresholds=thresholds, cut=cut)
    elif costs is not None:  # always, with a target cost (checked above)
        new = _to_cost(new, probs, scores, costs, target_cost)
    return _achieved(new, probs, scores, costs, shares, target_cost)


def _to_cost(policy: Policy, probs: np.ndarray, scores: np.ndarray | None, costs: np.ndarray,
             target: Any) -> Policy:
    """`policy` with its rule's parameter calibrated to a mean cost of `target` USD."""
    if policy.rule == "utility":
        return dataclasses.replace(policy, lambda_per_usd=calibrate_lambda(probs, costs, target))
    if scores is not None:
        return dataclasses.replace(policy, cut=cost_cut(scores, costs, target))
    return dataclasses.replace(policy, cut=None, thresholds=np.clip(
        calibrate_cost(probs, costs, target), 0.0, 1.0))  # +-inf: the model takes all / none


def _achieved(policy: Policy, probs: np.ndarray, scores: np.ndarray | None,
              costs: np.ndarray | None, shares: Sequence[float] | None,
              target_cost: float | None) -> Calibration:
    n, models = len(probs), policy.models
    chosen = policy.route(probs, costs, scores)
    got = {m: float(np.mean(chosen == k)) for k, m in enumerate(models)}
    mean_cost = None if costs is None else float(costs[np.arange(n), chosen].mean())
    rows = probs[:, :-1] if scores is None else np.asarray(scores)[:, None]
    _, counts = np.unique(rows, axis=0, return_counts=True)
    notes = []
    which = "the cloud share" if policy.pair else "a model's share"
    if n < SMALL_SAMPLE:
        notes.append(f"calibrated on only {n} prompts: each moves {which} by {100 / n:.1f}%; "
                     f"use at least {SMALL_SAMPLE} prompts of real traffic")
    if shares is not None and len(counts) < n:
        asked = [float(s) for s in shares]
        if policy.pair:
            share = (f"cloud share is {np.mean(chosen != 0):.1%} (asked for "
                     f"{sum(asked[1:]):.1%})")
        else:
            share = (f"shares are {_named(got)} (asked for "
                     f"{_named(dict(zip(models, asked, strict=True)))})")
        notes.append(f"{int(counts[counts > 1].sum())} of {n} prompts share a score with "
                     f"another (ties, e.g. repeated prompts) and always take the same route; "
                     f"the nearest achievable {share}")
    requested: dict[str, Any] = ({"target_cost": target_cost} if shares is None else
                                 {"shares": dict(zip(models, map(float, shares), strict=True))})
    return Calibration(policy, requested, got, mean_cost, n, len(counts),
                       float(np.mean(chosen != 0)), tuple(notes))


def _named(shares: dict[str, float]) -> str:
    return ", ".join(f"{m} {s:.1%}" for m, s in shares.items())


def calibrate_shares(probs: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """Thresholds [K] sending the achievable share nearest `shares[k]` of the prompts in `probs`
    [n, K] to model k (see the module docstring); the top model takes the rest (threshold 0).
    Raises ConfigError unless shares are K numbers >= 0 summing to 1."""
    return share_thresholds(probs, shares)[0]


def share_thresholds(probs: np.ndarray, shares: Sequence[float],
                     scores: np.ndarray | None = None) -> tuple[np.ndarray, float | None]:
    """(thresholds [K], cut): `calibrate_shares`, with the cheapest model's threshold a cut on
    `scores` [n] (P(cloud needed); the model takes scores below it) when they are given."""
    probs = check_probs(probs)
    n, k = probs.shape
    target = check_shares(shares, k)
    scores = None if scores is None else check_scores(scores, n)
    thresholds, cut = np.zeros(k), None
    left = np.ones(n, dtype=bool)
    for model in range(k - 1):
        escalate = float(target[model + 1:].sum()) * n  # prompts wanted past this model
        if model == 0 and scores is not None:
            cut = nearest_cut(scores, escalate, by_score=True)
            left &= scores >= cut
            continue
        thresholds[model] = nearest_cut(probs[left, model], escalate, by_score=False) \
            if left.any() else 1.0
        left &= probs[:, model] < thresholds[model]
    return np.minimum(thresholds, 1.0), cut


def nearest_cut(values: np.ndarray, escalate: float, by_score: bool) -> float:
    """The threshold of one model on `values` (of the prompts cheaper models left) that sends
    the achievable number of them nearest `escalate` past it (the fewer when two are equally
    near). `by_score`: the values are P(cloud needed) and the model takes those below the
    threshold; else P(adequate), and it takes those >= the threshold. Thresholds stay in
    [0, 1], so "none past" (scores) or "none taken" (adequacy) is not achievable when a value
    is 1.0."""
    r = len(values)
    u = np.sort(values) if by_score else np.sort(values)[::-1]  # in the order the model takes
    steps = np.flatnonzero(u[:-1] != u[1:]) + 1  # counts that cut between distinct values
    counts = np.concatenate(([0] if by_score or u[0] < 1.0 else [], steps,
                             [r] if not by_score or u[-1] < 1.0 else [])).astype(int)
    counts = counts[::-1]  # argmin takes the first: the larger count on a tie
    m = int(counts[np.argmin(np.abs((r - counts) - escalate))])
    if by_score:
        return float(u[m]) if m < r else float(np.nextafter(u[-1], np.inf))
    return float(u[m - 1]) if m > 0 else float(np.nextafter(u[0], np.inf))


def check_shares(shares: Any, k: int) -> np.ndarray:
    """`shares` as [k] floats >= 0 summing to 1, or ConfigError naming `shares`."""
    wants = f"{k} numbers >= 0 summing to 1 (one share of the prompts per model)"
    raw = np.asarray(shares) if not isinstance(shares, str | bytes) else None
    if raw is None or raw.dtype.kind not in "iuf" or raw.shape != (k,):
        raise check.fail(ConfigError, "shares", wants, shares)
    target = raw.astype(float)
    if not np.isfinite(target).all() or (target < 0).any() or not abs(target.sum() - 1) <= 1e-6:
        raise check.fail(ConfigError, "shares", wants, target.tolist())
    return target


def calibrate_cost(probs: np.ndarray, costs: Any, target: Any) -> np.ndarray:
    """Thresholds [K] (shared form) whose mean cost per prompt on `probs` [n, K] with `costs`
    [n, K] (USD) is at most `target`, with the largest such threshold (the most quality); a
    threshold of inf sends nothing to the models below the top, -inf everything to the cheapest.

    Raises ConfigError when even routing every prompt to the cheapest model costs more, or for
    bad probabilities, costs or target.
    """
    probs = check_probs(probs)
    costs = check_costs(costs, probs)
    k = probs.shape[1]

    def mean_cost(t: float) -> float:
        index, _ = choose(probs, shared_thresholds(t, k))
        return float(costs[np.arange(len(index)), index].mean())

    candidates = np.r_[np.inf, np.unique(probs[:, :-1])[::-1], -np.inf]  # high = costly
    return shared_thresholds(_first_fitting(candidates, mean_cost, target), k)


def cost_cut(scores: np.ndarray, costs: np.ndarray, target: Any) -> float:
    """A pair's cut on `scores` [n] (P(cloud needed); the edge takes those below it) whose mean
    cost on `costs` [n, 2] (USD) is at most `target`, with the most prompts on the cloud.
    ConfigError when even sending every prompt to the edge costs more."""
    costs = check.array(costs, "costs", 2, low=0.0)
    s = check_scores(scores, len(costs))
    if costs.shape != (len(s), 2) or not len(s):
        raise ConfigError(f"costs must be [n >= 1, 2] for a pair; found {costs.shape}")
    top = float(np.nextafter(s.max(), np.inf)) if s.max() < 1.0 else 1.0

    def mean_cost(cut: float) -> float:
        return float(np.where(s < cut, costs[:, 0], costs[:, 1]).mean())

    return _first_fitting(np.r_[0.0, np.unique(s), top], mean_cost, target)


def _first_fitting(candidates: np.ndarray, mean_cost: Callable[[float], float],
                   target: Any) -> float:
    """The first of `candidates` (ordered by falling cost) whose mean cost fits `target`, by
    bisection; ConfigError when not even the last (the cheapest routing) fits."""
    target = _target_cost(target)
    if mean_cost(candidates[-1]) > target + 1e-15:
        raise ConfigError(f"target cost {target:.6g} USD per prompt is below the cheapest "
                          f"model's ({mean_cost(candidates[-1]):.6g}); raise it")
    lo, hi = 0, len(candidates) - 1  # cost(candidates[hi]) fits
    while lo < hi:
        mid = (lo + hi) // 2
        if mean_cost(candidates[mid]) <= target:
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo])


def calibrate_lambda(probs: np.ndarray, costs: Any, target: Any) -> float:
    """The smallest lambda >= 0 (adequacy per USD) whose utility routing of `probs` [n, K] with
    `costs` [n, K] (USD) costs at most `target` USD per prompt on average, i.e. the most quality
    within the budget. Mean cost can only fall as lambda grows; found by bisection to a relative
    1e-9. Raises ConfigError when even the cheapest model costs more than `target`."""
    probs = check_probs(probs)
    costs = check_costs(costs, probs)
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


def _target_cost(target: Any) -> float:
    """`target` as a finite float >= 0 (USD per prompt), or ConfigError."""
    return float(check.number(target, "target_cost", low=0.0, unit="USD per prompt"))
