"""Drift numbers and the drift report: PSI and KS against their definitions and scipy, the
in-memory monitor's band warning (logged once per episode), and a report over a real log whose
traffic shifts from easy to hard prompts in its second hour."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from logged import entry
from scipy import stats

from confroute.cli import main
from confroute.errors import ConfigError, DataError
from confroute.traffic import served
from confroute.traffic.drift import DriftMonitor, DriftSettings, ks_statistic, psi
from confroute.traffic.log import DecisionLog, LogSettings
from confroute.traffic.routers import RouterView

from conftest import make_rows


@pytest.mark.parametrize("seed, n, m, rounded", [(0, 500, 300, False), (1, 50, 2000, False),
                                                 (2, 400, 400, True)])
def test_ks_is_scipys_statistic(seed: int, n: int, m: int, rounded: bool) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.beta(2, 5, n), rng.beta(2.5, 5, m)
    if rounded:  # ties within and across the samples
        a, b = a.round(1), b.round(1)
    assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_psi_by_hand_and_its_usual_readings() -> None:
    reference = np.repeat([0.1, 0.6], 50)  # two bins split at the median
    current = np.repeat([0.1, 0.6], [80, 20])
    by_hand = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(reference, current, bins=2) == pytest.approx(by_hand)
    rng = np.random.default_rng(0)
    same, shifted = rng.beta(2, 5, 5000), rng.beta(5, 2, 5000)
    assert psi(same, rng.beta(2, 5, 5000)) < 0.1 < 0.25 < psi(same, shifted)
    assert np.isnan(psi(same, [])) and np.isnan(ks_statistic([], same))


def test_the_monitor_warns_once_when_the_share_leaves_its_band(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "confroute.traffic")
    monitor = DriftMonitor(DriftSettings(window=200, min_decisions=100, band=0.1), 0.3)
    rng = np.random.default_rng(0)
    for i in range(400):
        monitor.observe(rng.beta(2, 5), i % 10 < 3, cost_usd=0.001, top_cost_usd=0.003)
    assert monitor.stats()["cloud_share_out_of_band"] == 0.0
    assert monitor.stats()["realised_cloud_share"] == pytest.approx(0.3)
    assert np.isfinite(monitor.stats()["score_psi"])  # the first window became the reference
    for i in range(400):
        monitor.observe(rng.beta(5, 2), i % 10 < 8)
    numbers = monitor.stats()
    assert numbers["cloud_share_out_of_band"] == 1.0 and numbers["score_psi"] > 0.25
    assert numbers["savings_usd_total"] == pytest.approx(400 * 0.002)
    for i in range(400):
        monitor.observe(rng.beta(2, 5), i % 10 < 3)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("outside the calibrated 30.0%" in m for m in messages) == 1
    assert sum("back within" in m for m in messages) == 1


def test_bad_drift_settings_are_refused() -> None:
    for values in ({"band": 0}, {"target_share": 1.5}, {"window": 1}):
        with pytest.raises(ConfigError, match="drift."):
            DriftSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("name, value", [
    ("window", 1), ("window", 10**12), ("window", True), ("min_decisions", 0),
    ("min_decisions", 2.5), ("bins", 1), ("bins", 10**9)])
def test_each_bad_count_is_named_with_its_value(name: str, value: object) -> None:
    with pytest.raises(ConfigError) as error:
        DriftSettings(**{name: value})  # type: ignore[arg-type]
    assert f"drift.{name} must be an integer in [" in str(error.value)
    assert f"found {value!r}" in str(error.value)


@pytest.fixture
def shifted_log(sqlite_url: str, tiny_artifact: Path) -> tuple[str, list[str]]:
    """Two hours of traffic routed by the tiny router: mixed prompts, then only hard ones."""
    view = RouterView.load(tiny_artifact)
    rows = make_rows(500)[96:]
    mixed = [r["prompt"] for r in rows[:150]]
    hard = [r["prompt"] for r in rows[150:] if r["label"] == 1.0][:100]
    log = DecisionLog.open(LogSettings(url=sqlite_url, flush_interval_s=0.01),
                           {"edge": _price(0.1), "cloud": _price(2.0)})
    for i, text in enumerate(mixed + hard):
        up = bool(view.chosen([text])[0])
        model = "cloud" if up else "edge"
        log.record(entry(i, artifact=view.identity, text=text, score=float(view.score([text])[0]),
                         chosen_model=model, answering_model=model,
                         time=1e6 + (i if i < 150 else 3600 + i)))
        if i % 5 == 0:
            log.feedback(f"req-{i}", thumbs="down" if i % 10 else "up")
    log.close()
    return sqlite_url, mixed


def _price(usd: float):
    from confroute.dataset.ratings import Price

    return Price(usd, usd)


def test_the_report_shows_the_shift_and_the_share_leaving_its_band(
        shifted_log: tuple[str, list[str]], tiny_artifact: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    url, calibration = shifted_log
    reference = tmp_path / "calibration.txt"
    reference.write_text("\n".join(calibration) + "\n")
    assert main(["drift", "--db", url, "--artifact", str(tiny_artifact), "--out",
                 str(tmp_path / "drift"), "--reference", str(reference), "--band", "0.1"]) == 0
    assert "250 requests" in capsys.readouterr().out
    result = json.loads((tmp_path / "drift" / "drift.json").read_text())
    first, second = result["buckets"]
    assert (first["requests"], second["requests"]) == (150, 100)
    assert second["psi"] > first["psi"] and second["ks"] > first["ks"]
    assert second["cloud_share"] > first["cloud_share"] and second["out_of_band"]
    assert result["reference"]["source"] == "calibration prompts"
    assert first["feedback_rate"] == pytest.approx(30 / 150)
    assert result["savings_usd"] > 0 and 0 <= result["shift"]["ks_pvalue"] <= 1
    assert (tmp_path / "drift" / "drift.png").stat().st_size > 10_000
    empty = tmp_path / "empty.txt"
    empty.write_text("")  # given but empty: an error, never the first bucket in its place
    assert main(["drift", "--db", url, "--artifact", str(tiny_artifact), "--out",
                 str(tmp_path / "drift2"), "--reference", str(empty)]) == 2
    assert "holds no prompt" in capsys.readouterr().err
    assert not (tmp_path / "drift2").exists()


def test_a_report_for_an_artifact_the_log_never_served(sqlite_url: str, tiny_artifact: Path,
                                                       tmp_path: Path) -> None:
    from confroute.traffic.report import report

    log = DecisionLog.open(LogSettings(url=sqlite_url))
    log.record(entry(1))
    log.close()
    with pytest.raises(DataError, match="holds no decision of"):
        report(sqlite_url, tiny_artifact, tmp_path)
    assert served.identity(tiny_artifact).id == tiny_artifact.resolve().name


def test_unknown_savings_are_not_drawn_as_zero_dollars() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from confroute.traffic.report import _plot_savings

    fig, (unknown, partial) = plt.subplots(2, 1)
    _plot_savings(unknown, [0.0, 1.0, 2.0], [None, None, None])
    assert not unknown.lines and "unknown" in unknown.texts[0].get_text()
    _plot_savings(partial, [0.0, 1.0, 2.0], [0.5, None, 0.25])
    x, y = partial.lines[0].get_data()
    assert list(x) == [0.0, 2.0] and list(y) == [0.5, 0.75]  # the gap is skipped, not a 0
    plt.close(fig)
