"""One calibration of both cascade thresholds (t1, t2) to a target cloud share (numpy only).

The cloud share is what reaches the cloud: the share sent direct by the router (score >= t1)
plus the share escalated after the edge answered (uncertainty >= t2). Many (t1, t2) pairs reach
the same share; with the edge's outcomes known the pair with the best quality is taken (ties:
the cheaper, since a request sent direct does not pay the edge's tokens), else the caller fixes
the direct share. Cost counts the edge's generation on every request stage 1 did not send
direct, escalated ones included (they pay both models). Each threshold is a real value of the
calibration prompts, tie-aware as in `confroute.calibration` (`nearest_cut`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute import arguments as check
from confroute.artifact import read_manifest, write_manifest
from confroute.calibration import SMALL_SAMPLE, nearest_cut
from confroute.cascade import CascadePolicy, EdgeEvidence, Uncertainty, _vector
from confroute.errors import ConfigError

NEVER = 1.5
"""t2 above every uncertainty (in [0, 1]): stage 2 escalates nothing."""


@dataclasses.dataclass(frozen=True)
class CascadeCalibration:
    """A calibrated cascade and what it achieves on its calibration prompts (shares of them)."""

    policy: CascadePolicy
    requested: float
    """The target cloud share."""
    direct: float
    """Share sent to the cloud by stage 1 (never answered by the edge)."""
    escalated: float
    """Share answered by the edge, then sent to the cloud by stage 2."""
    quality: float | None
    """Mean outcome (edge's where it kept the request, the cloud's elsewhere); None unknown."""
    mean_cost: float | None
    """USD per request, the edge's generation counted on escalated requests; None without
    costs."""
    prompts: int
    warnings: tuple[str, ...] = ()

    @property
    def cloud_share(self) -> float:
        return self.direct + self.escalated

    @property
    def edge_calls(self) -> float:
        """Share of requests that paid the edge's generation (1 - direct)."""
        return 1.0 - self.direct


def outcomes(scores: np.ndarray, u: np.ndarray, t1: float, t2: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """(direct [n], escalated [n]) boolean masks of a cascade with thresholds t1, t2."""
    direct = scores >= t1
    return direct, ~direct & (u >= t2)


def quality_and_cost(direct: np.ndarray, escalated: np.ndarray, edge_q: np.ndarray | None,
                     cloud_q: np.ndarray, edge_cost: np.ndarray | None,
                     cloud_cost: np.ndarray | None) -> tuple[float | None, float | None]:
    """Mean quality and mean USD per request of one routing (see the module docstring)."""
    cloud = direct | escalated
    quality = None if edge_q is None else float(np.where(cloud, cloud_q, edge_q).mean())
    cost = None
    if edge_cost is not None and cloud_cost is not None:
        cost = float((np.where(direct, 0.0, edge_cost) + np.where(cloud, cloud_cost, 0.0)).mean())
    return quality, cost


def calibrate_cascade(uncertainty: Uncertainty, scores: Any, evidence: Sequence[EdgeEvidence],
                      cloud_share: float, *, edge_correct: Any = None, cloud_correct: Any = None,
                      direct_share: float | None = None, edge_cost: Any = None,
                      cloud_cost: Any = None, grid: int = 201) -> CascadeCalibration:
    """(t1, t2) sending `cloud_share` of the prompts to the cloud, direct + escalated.

    `scores` [n]: the router's P(cloud needed); `evidence` [n]: the edge's signals on each
    prompt (from its answer); `edge_correct` / `cloud_correct` [n]: outcomes in [0, 1] (the
    cloud counts as correct when not given, so quality is then an upper bound); `edge_cost` /
    `cloud_cost`: USD per request, a number or [n]. With `direct_share` stage 1 takes that share
    and stage 2 the rest; else `edge_correct` is needed and up to `grid` splits are tried.
    Raises ConfigError (a bad share, neither outcomes nor a direct share) or InputError (bad
    scores, evidence or outcomes).
    """
    check.instance(uncertainty, "uncertainty", Uncertainty, "a cascade.Uncertainty")
    target = check.number(cloud_share, "cloud_share", low=0.0, high=1.0)
    direct_share = check.number(direct_share, "direct_share", low=0.0, high=1.0, optional=True)
    s = _vector("scores", scores)
    n = len(s)
    if n == 0:
        raise ConfigError("scores: calibrating a cascade needs at least one prompt")
    u = uncertainty(s, evidence)
    edge_q = None if edge_correct is None else _vector("edge_correct", edge_correct, n)
    cloud_q = np.ones(n) if cloud_correct is None else _vector("cloud_correct", cloud_correct, n)
    costs = [None if c is None else np.broadcast_to(_vector(name, np.ravel(c)), (n,))
             for name, c in (("edge_cost", edge_cost), ("cloud_cost", cloud_cost))]
    if direct_share is not None:
        wanted = [min(direct_share, target) * n]
    elif edge_q is None:
        raise ConfigError("give edge_correct (the edge's outcomes on these prompts) to choose "
                          "the split between the stages, or fix it with direct_share")
    else:
        wanted = list(np.linspace(0.0, target * n, max(2, int(grid))))
    best: tuple[Any, ...] | None = None
    for d in wanted:
        t1 = nearest_cut(s, d, by_score=True)
        rest = s < t1
        t2 = nearest_cut(u[rest], target * n - (n - rest.sum()), by_score=True) \
            if rest.any() else NEVER
        direct, escalated = outcomes(s, u, t1, min(t2, NEVER))
        q, c = quality_and_cost(direct, escalated, edge_q, cloud_q, *costs)
        key = (-abs((direct | escalated).mean() - target), q or 0.0, -(c or 0.0))
        if best is None or key > best[0]:
            best = (key, t1, min(t2, NEVER), direct, escalated, q, c)
    assert best is not None
    _, t1, t2, direct, escalated, q, c = best
    notes = (f"calibrated on only {n} prompts; use at least {SMALL_SAMPLE} of real traffic",) \
        if n < SMALL_SAMPLE else ()
    return CascadeCalibration(CascadePolicy(min(t1, NEVER), t2, uncertainty), target,
                              float(direct.mean()), float(escalated.mean()), q, c, n, notes)


def write_cascade(directory: str | Path, policy: CascadePolicy) -> Path:
    """Store `policy` as the `cascade` section of the artifact's manifest in `directory`
    (atomically; the proxy reads it with `cascade: true`). Raises ArtifactError for a missing
    or damaged artifact (nothing is written then), ConfigError when `policy` is no
    CascadePolicy."""
    check.instance(policy, "policy", CascadePolicy, "a cascade.CascadePolicy")
    manifest = read_manifest(directory)
    manifest["cascade"] = policy.to_dict()
    return write_manifest(directory, manifest)
