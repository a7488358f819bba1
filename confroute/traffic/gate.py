"""The promotion gate: a candidate router against the served one on recent held-out logged
traffic with outcomes; promote (an atomic swap of the served link) only on a measured gain.

Rows: the `test` rows of the log's table (`confroute.traffic.dataset`: the newest
`test_fraction` of the requests with ratings of every model and logged text), i.e. traffic
after everything a router trained on this log saw. On them, with ratings R [n, K]:

- the current cloud share s* is the share of the held-out period's requests with outcomes
  that the deployment sent above its cheapest model (the logged decisions), counting those the
  table left out: with feedback alone a request sent up has no rating of the cheaper model, so
  the scored rows themselves would show a share near 0, where every router ties;
- each router's quality at s* (the two-model view, `confroute.evaluation.metrics`): its s*
  highest P(cloud needed) go up (to the model its calibrated policy picks there, the top model
  when it picks the cheapest), the rest get the cheapest model's answer; equal scores move
  together, so ties count at their expected value;
- gain = quality(candidate) - quality(served) at s*, with a paired percentile bootstrap CI over
  requests (both routers scored on each resample: Efron 1979, as `stats.weighted_bootstrap`);
- each router as calibrated: the share it sends up and its quality at its own thresholds;
- beside them, at s*: the prior (the per-category rate of "a pricier model rated better" on the
  log's older rows, `dataset.prior.GroupPrior`; one global rate when no request carries a
  category), random (constant scores) and the oracle.

The candidate is promoted only when at least `min_rows` rows were scored and the CI's lower end
is above `margin`; otherwise the report says which condition failed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from confroute.dataset.prior import GroupPrior
from confroute.errors import ConfigError, DataError
from confroute.evaluation import metrics
from confroute.stats import weighted_bootstrap
from confroute.traffic import served
from confroute.traffic.dataset import LogTableSettings, log_table
from confroute.traffic.routers import RouterView

MAX_BOOTSTRAP = 100_000  # each resample scores every held-out row; more adds time, not accuracy


@dataclasses.dataclass
class GateSettings:
    """When a candidate router replaces the served one."""

    margin: float = 0.0
    """Promote only when the lower end of the gain's CI (quality per request at the current
    cloud share) is above this."""
    min_rows: int = 100
    """Fewest held-out logged requests with outcomes to decide on."""
    confidence: float = 0.95
    """Confidence level of the gain's bootstrap CI, in (0, 1)."""
    bootstrap: int = 1000
    """Bootstrap resamples of the requests for the CI."""
    seed: int = 0
    """Seed of the bootstrap resampling (the same seed, log and routers give the same CI)."""
    promote: bool = True
    """Swap the served link to the candidate when the gate passes (false: only report)."""
    log: LogTableSettings = dataclasses.field(default_factory=LogTableSettings)
    """Which logged rows are held out (the newest test_fraction) and how ratings are read."""

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1); found {self.confidence!r}")
        for name, most in (("min_rows", None), ("bootstrap", MAX_BOOTSTRAP)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 \
                    or (most is not None and value > most):
                bound = f"in [1, {most:,}]" if most else ">= 1"
                raise ConfigError(f"{name} must be an integer {bound}; found {value!r}")


def evaluate(candidate: RouterView, current: RouterView, table: Any,
             settings: GateSettings, share: float | None = None) -> dict[str, Any]:
    """The gate's figures for `candidate` vs `current` on `table` (the log's table; its test
    rows are scored, its train rows fit the prior) at the deployment's cloud share `share`
    (None: the share of the scored rows sent up; the log's `test_period` share is better, see
    `dataset._test_period`). Raises DataError when the routers' models differ from the log's or
    no held-out row is left."""
    models = list(current.models)
    for view in (candidate, current):
        if view.models != models or [c for c in models if c not in table.columns]:
            raise DataError(f"the candidate routes among {candidate.models}, the served router "
                            f"among {current.models}, the log's rows among the columns "
                            f"{[c for c in table.columns if c in set(models)]}: the gate "
                            "compares routers of the same models on their logged outcomes")
    test, train = table[table["split"] == "test"], table[table["split"] == "train"]
    if len(test) == 0:
        raise DataError("no held-out logged request with outcomes to score; log more traffic "
                        "with outcomes (feedback, shadow judging) or raise log.test_fraction")
    texts = test["prompt"].tolist()
    ratings = test[models].to_numpy(dtype=float)
    scored_share = float(np.mean(test["chosen_model"].to_numpy() != models[0]))
    share = scored_share if share is None else share
    views = {"candidate": candidate, "served": current}
    routed = {name: _routing(view, texts, ratings) for name, view in views.items()}
    top = np.full(len(test), len(models) - 1)
    prior = _prior(train, test, models)
    curves = {**{name: (r["score"], r["up"]) for name, r in routed.items()},
              "prior": (prior, top), "random": (np.zeros(len(test)), top),
              "oracle": (ratings[:, -1] - ratings[:, 0], top)}
    quality = {name: _quality_at(score, up, ratings, share)
               for name, (score, up) in curves.items()}
    gain = quality["candidate"] - quality["served"]
    ci = _gain_ci(routed, ratings, share, settings)
    return {"models": models, "rows": len(test), "train_rows": len(train),
            "current_cloud_share": share, "scored_rows_cloud_share": scored_share,
            "quality_at_current_share": quality,
            "gain": gain, "gain_ci": ci,
            "as_calibrated": {name: {"cloud_share": r["share"], "quality": r["quality"],
                                     "target_share": views[name].target_share()}
                              for name, r in routed.items()},
            "artifacts": {name: dataclasses.asdict(view.identity)
                          for name, view in views.items()}}


def decide(report: dict[str, Any], settings: GateSettings) -> list[str]:
    """Why the candidate must not be promoted (empty: it may)."""
    reasons = []
    if report["rows"] < settings.min_rows:
        reasons.append(f"only {report['rows']} held-out logged requests with outcomes (need "
                       f"min_rows = {settings.min_rows}); log more traffic with outcomes")
    low, high = report["gain_ci"]["low"], report["gain_ci"]["high"]
    if not low > settings.margin:
        reasons.append(f"the gain in quality at the current cloud share "
                       f"({report['current_cloud_share']:.1%}) is {report['gain']:+.4f}, "
                       f"{100 * settings.confidence:.0f}% CI [{low:+.4f}, {high:+.4f}]: its "
                       f"lower end is not above the margin {settings.margin:+.4f}")
    return reasons


def gate(candidate: str | Path, link: str | Path, url: str, settings: GateSettings | None = None
         ) -> dict[str, Any]:
    """Score `candidate` against the artifact `link` serves on the log at `url`, and promote it
    (atomically re-point `link`, `served.promote`) when the gate passes and `settings.promote`.

    Returns the report with `promoted`, `reasons` (why not) and `previous` (the old target).
    Raises ConfigError when promotion is asked and `link` is not a symbolic link (checked before
    anything is scored), ArtifactError for a bad artifact, DataError as `evaluate`.
    """
    settings = settings or GateSettings()
    link = Path(link)
    if settings.promote and not link.is_symlink():
        raise ConfigError(f"{link} is not a symbolic link, so the served artifact cannot be "
                          f"swapped atomically; serve a link (ln -s $PWD/ARTIFACT_DIR {link}) "
                          "or pass --promote false to only compare")
    table, log_report = log_table(url, settings.log)
    report = evaluate(RouterView.load(candidate), RouterView.load(link), table, settings,
                      log_report["test_period"]["cloud_share"])
    reasons = decide(report, settings)
    report.update(reasons=reasons, promoted=False, previous=None, log=log_report,
                  margin=settings.margin)
    if not reasons and settings.promote:
        previous = served.promote(candidate, link)
        report.update(promoted=True, previous=str(previous) if previous else None)
    return report


def _routing(view: RouterView, texts: list[str], ratings: np.ndarray) -> dict[str, Any]:
    chosen = view.chosen(texts)
    rows = np.arange(len(texts))
    return {"score": view.score(texts), "up": np.where(chosen > 0, chosen, ratings.shape[1] - 1),
            "share": float(np.mean(chosen > 0)), "quality": float(ratings[rows, chosen].mean())}


def _quality_at(score: np.ndarray, up: np.ndarray, ratings: np.ndarray, share: float,
                weights: np.ndarray | None = None) -> float:
    curve = metrics.sweep(score, ratings[:, 0], ratings[np.arange(len(up)), up], weights)
    return float(np.interp(share, curve.fraction, curve.quality))


def _gain_ci(routed: dict[str, Any], ratings: np.ndarray, share: float,
             settings: GateSettings) -> dict[str, float]:
    def statistic(w: np.ndarray) -> dict[str, float]:
        return {"gain": _quality_at(routed["candidate"]["score"], routed["candidate"]["up"],
                                    ratings, share, w)
                - _quality_at(routed["served"]["score"], routed["served"]["up"], ratings,
                              share, w)}

    out = weighted_bootstrap(len(ratings), statistic, settings.bootstrap, settings.seed,
                             settings.confidence)
    return {**out["gain"], "confidence": settings.confidence, "samples": settings.bootstrap}


def _prior(train: Any, test: Any, models: list[str]) -> np.ndarray:
    """Per-category rate of "the top model rated above the cheapest" on the older rows."""
    if len(train) == 0:
        return np.zeros(len(test))
    labels = (train[models[-1]].to_numpy(float) > train[models[0]].to_numpy(float)).astype(float)
    prior = GroupPrior().fit(train["category"].astype(str).to_numpy(), labels)
    return prior.score(test["category"].astype(str).to_numpy())
