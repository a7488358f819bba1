"""The drift report of one artifact's logged traffic: `drift.json` and `drift.png` (see
`confroute.traffic.drift` for what each number is and its source)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from confroute.errors import ConfigError, DataError, require
from confroute.files import replacing, write_json
from confroute.traffic import drift, store
from confroute.traffic.routers import RouterView


def read_log(url: str, sha256: str) -> tuple[Any, Any]:
    """(decisions, outcomes) of the artifact with router.json sha256 `sha256`, as DataFrames."""
    pd = require("pandas", "train")
    from sqlalchemy import exc, select

    from confroute.traffic.schema import decisions, outcomes

    engine = store.connect_reader(url)  # never writes into its source
    mine = select(decisions.c.request_id).where(decisions.c.artifact_sha256 == sha256)
    try:
        with engine.connect() as conn:
            found = pd.DataFrame([dict(r._mapping) for r in conn.execute(
                select(decisions).where(decisions.c.artifact_sha256 == sha256)
                .order_by(decisions.c.time))], columns=[c.name for c in decisions.columns])
            rated = pd.DataFrame([dict(r._mapping) for r in conn.execute(
                select(outcomes.c.request_id, outcomes.c.kind, outcomes.c.rating).where(
                    outcomes.c.request_id.in_(mine)))], columns=["request_id", "kind", "rating"])
    except exc.SQLAlchemyError as error:
        raise ConfigError(f"cannot read the decision log at {store.shown(url)}: "
                          f"{store.one_line_error(error)}") from error
    finally:
        engine.dispose()
    return found, rated


def report(url: str, artifact: str | Path, out: str | Path,
           settings: drift.DriftSettings | None = None, bucket_s: float = 3600.0,
           reference_texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Write `out/drift.json` and `out/drift.png` for the decisions the log holds of the
    artifact at `artifact` (matched by its router.json sha256), bucketed by `bucket_s` seconds;
    returns the report. `reference_texts`: the calibration prompts (scored by the artifact),
    else the first bucket's scores are the reference. Raises DataError when the log holds no
    decision of this artifact or `reference_texts` is empty, ConfigError when it cannot be read."""
    settings = settings or drift.DriftSettings()
    if not bucket_s > 0:
        raise ConfigError(f"bucket_s must be a number of seconds > 0; found {bucket_s!r}")
    view = RouterView.load(artifact)
    decisions, outcomes = read_log(url, view.identity.sha256)
    if len(decisions) == 0:
        raise DataError(f"the decision log at {store.shown(url)} holds no decision of "
                        f"{artifact} (router.json sha256 {view.identity.sha256[:12]}...); "
                        "serve it with the log on, or give the artifact that was served "
                        "(`calibrate --write` and `write_cascade` rewrite router.json, which "
                        "makes a new artifact identity)")
    scores = decisions["score"].dropna().to_numpy(float)
    if reference_texts is not None:
        if not reference_texts:  # an empty file must not fall back to the traffic silently
            raise DataError("the reference (calibration prompts) holds no prompt; give the "
                            "prompts the artifact was calibrated on, one per line")
        reference, source = view.score(list(reference_texts)), "calibration prompts"
    else:
        first = decisions["time"] < decisions["time"].min() + bucket_s
        reference = decisions.loc[first, "score"].dropna().to_numpy(float)
        source = "the first bucket of logged traffic (give the calibration prompts instead)"
    target = settings.target_share if settings.target_share is not None \
        else view.target_share()
    buckets = drift.series(decisions, outcomes, bucket_s, reference, target, settings)
    result = {"artifact": dataclasses.asdict(view.identity), "log": store.shown(url),
              "requests": len(decisions), "bucket_s": bucket_s,
              "cloud_share": float(np.mean(decisions["chosen_model"].to_numpy()
                                           != decisions["models"].map(lambda m: m[0]))),
              "target_cloud_share": target, "band": settings.band,
              "out_of_band_buckets": sum(b["out_of_band"] for b in buckets),
              "reference": {"source": source, "scores": len(reference)},
              "shift": _shift(reference, scores, settings.bins),
              "savings_usd": _total(b["savings_usd"] for b in buckets),
              "cost_usd": _total(b["cost_usd"] for b in buckets),
              "feedback_rate": float(np.average([b["feedback_rate"] for b in buckets],
                                                weights=[b["requests"] for b in buckets])),
              "buckets": buckets}
    out = Path(out)
    write_json(out / "drift.json", result)
    plot(result, out / "drift.png")
    return result


def _shift(reference: np.ndarray, scores: np.ndarray, bins: int) -> dict[str, Any]:
    stats = require("scipy.stats", "train")
    shift: dict[str, Any] = {"psi": drift.psi(reference, scores, bins),
                             "ks": drift.ks_statistic(reference, scores)}
    if len(reference) and len(scores):
        shift["ks_pvalue"] = float(stats.ks_2samp(reference, scores).pvalue)
    return shift


def _total(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def plot(result: dict[str, Any], path: Path) -> Path:
    """Cloud share against its band, PSI and KS, feedback and retry rates, savings over time."""
    matplotlib = require("matplotlib", "train")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = result["buckets"]
    hours = [(b["start"] - buckets[0]["start"]) / 3600 for b in buckets]
    fig, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
    axes[0].plot(hours, [b["cloud_share"] for b in buckets], marker="o", label="realised")
    if result["target_cloud_share"] is not None:
        t, band = result["target_cloud_share"], result["band"]
        axes[0].axhspan(t - band, t + band, alpha=0.2, label="calibrated target +- band")
    axes[0].set_ylabel("cloud share")
    axes[1].plot(hours, [b["psi"] for b in buckets], marker="o", label="PSI")
    axes[1].plot(hours, [b["ks"] for b in buckets], marker="s", label="KS")
    axes[1].set_ylabel("score shift")
    axes[2].plot(hours, [b["feedback_rate"] for b in buckets], marker="o", label="feedback")
    axes[2].plot(hours, [b["retry_rate"] for b in buckets], marker="s", label="retries")
    axes[2].set_ylabel("share of requests")
    _plot_savings(axes[3], hours, [b["savings_usd"] for b in buckets])
    axes[3].set_xlabel("hours since the first logged request")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"drift of {result['artifact']['id']}: {result['requests']} requests")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def _plot_savings(ax: Any, hours: list[float], savings: list[float | None]) -> None:
    """Cumulative savings over the buckets whose cost is known; a bucket without logged prices
    or usage is a gap, not 0 USD, and a log with no known cost says so instead of a line."""
    ax.set_ylabel("savings, USD")
    known = [(h, s) for h, s in zip(hours, savings, strict=True) if s is not None]
    if not known:
        ax.text(0.5, 0.5, "unknown: no logged cost (set log.prices, or serve a K-model "
                "artifact with prices)", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot([h for h, _ in known], np.cumsum([s for _, s in known]), marker="o",
            label="vs always-cloud (buckets with a known cost)")
