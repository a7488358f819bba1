"""The promotion gate on a real log and real artifacts: a router that learned which prompts the
edge model fails is promoted over one trained on the opposite labels (the served link swapped
atomically), and the reverse swap is refused, saying why."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from logged import entry, fill

from confroute.cli import main
from confroute.errors import ConfigError
from confroute.traffic import served
from confroute.traffic.gate import GateSettings, gate
from confroute.traffic.log import DecisionLog, LogSettings
from confroute.traffic.routers import RouterView

from conftest import make_rows, tiny_config

N = 600


@pytest.fixture(scope="module")
def worse_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """The tiny router trained on the opposite labels: it sends the easy prompts up."""
    from confroute.export import export
    from confroute.training.fit import fit

    folder = tmp_path_factory.mktemp("worse")
    rows = [dict(r, label=1.0 - r["label"]) for r in make_rows()]
    data = folder / "flipped.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fit(tiny_config(tiny_encoder_dir, data), folder / "run")
    return export(folder / "run", folder / "artifact") and folder / "artifact"


@pytest.fixture(scope="module")
def log_url(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> str:
    """600 logged requests on new prompts of the toy templates, routed by the good router, with
    judge verdicts: the edge model fails exactly the hard prompts, the cloud never."""
    url = f"sqlite:///{tmp_path_factory.mktemp('gate') / 'decisions.db'}"
    rows = make_rows(96 + N)[96:]  # prompts the routers were not trained on
    prompts = [r["prompt"] for r in rows]
    hard = np.array([r["label"] == 1.0 for r in rows])
    chosen = RouterView.load(tiny_artifact).chosen(prompts)
    log = DecisionLog.open(LogSettings(url=url, text=True, flush_interval_s=0.01))
    fill(log, prompts, {"edge": ~hard, "cloud": np.ones(N, bool)}, ["edge", "cloud"],
         chosen=[["edge", "cloud"][c] for c in chosen])
    log.close()
    return url


def link_to(folder: Path, target: Path) -> Path:
    link = folder / "served"
    os.symlink(target.resolve(), link)
    return link


def test_a_better_candidate_is_promoted(log_url: str, tiny_artifact: Path,
                                        worse_artifact: Path, tmp_path: Path) -> None:
    link = link_to(tmp_path, worse_artifact)
    report = gate(tiny_artifact, link, log_url, GateSettings(bootstrap=300))
    assert report["rows"] == N // 5 and report["promoted"], report["reasons"]
    assert report["gain_ci"]["low"] > 0
    quality = report["quality_at_current_share"]
    assert quality["oracle"] >= quality["candidate"] > quality["random"] > quality["served"]
    assert served.resolve(link) == tiny_artifact.resolve()
    assert Path(report["previous"]) == worse_artifact.resolve()


def test_a_worse_candidate_is_refused_with_the_reason(log_url: str, tiny_artifact: Path,
                                                      worse_artifact: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    link = link_to(tmp_path, tiny_artifact)
    code = main(["gate", "--candidate", str(worse_artifact), "--served", str(link), "--db",
                 log_url, "--bootstrap", "300", "--out", str(tmp_path / "gate.json")])
    out = capsys.readouterr().out
    assert code == 1 and "not promoted: the gain in quality at the current cloud share" in out
    assert served.resolve(link) == tiny_artifact.resolve()
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["gain"] < 0 and not report["promoted"]


def test_too_few_rows_and_a_margin_are_reasons(log_url: str, tiny_artifact: Path,
                                               worse_artifact: Path, tmp_path: Path) -> None:
    link = link_to(tmp_path, worse_artifact)
    report = gate(tiny_artifact, link, log_url, GateSettings(bootstrap=100, min_rows=1000,
                                                             margin=0.9))
    assert not report["promoted"] and len(report["reasons"]) == 2
    assert "only 120 held-out" in report["reasons"][0]
    assert served.resolve(link) == worse_artifact.resolve()


def test_a_plain_directory_cannot_be_promoted_into(log_url: str, tiny_artifact: Path,
                                                   tmp_path: Path) -> None:
    plain = tmp_path / "served"
    shutil.copytree(tiny_artifact, plain)
    with pytest.raises(ConfigError, match="not a symbolic link"):
        gate(tiny_artifact, plain, log_url)
    report = gate(tiny_artifact, plain, log_url, GateSettings(promote=False, bootstrap=50))
    assert not report["promoted"] and abs(report["gain"]) < 1e-12  # the same router


def test_promote_swaps_a_link_atomically(tiny_artifact: Path, worse_artifact: Path,
                                         tmp_path: Path) -> None:
    link = tmp_path / "served"
    assert served.promote(worse_artifact, link) is None
    assert served.promote(tiny_artifact, link) == worse_artifact.resolve()
    assert link.is_symlink() and served.resolve(link) == tiny_artifact.resolve()
    assert [p.name for p in tmp_path.iterdir()] == ["served"]  # no temporary link left
    assert served.identity(link) == served.identity(tiny_artifact)


@pytest.mark.parametrize("name, value, message", [
    ("min_rows", 0, "min_rows must be an integer >= 1; found 0"),
    ("bootstrap", 0, "bootstrap must be an integer in [1, 100,000]; found 0"),
    ("bootstrap", 10**9, "bootstrap must be an integer in [1, 100,000]; found 1000000000"),
    ("bootstrap", True, "found True"),
    ("confidence", 1.0, "confidence must be in (0, 1); found 1.0")])
def test_each_bad_gate_setting_is_named_with_its_value(name: str, value: object,
                                                       message: str) -> None:
    with pytest.raises(ConfigError) as error:
        GateSettings(**{name: value})  # type: ignore[arg-type]
    assert message in str(error.value)


def test_the_current_share_counts_requests_sent_up_with_feedback_only(
        tmp_path: Path, tiny_artifact: Path, worse_artifact: Path) -> None:
    """Feedback rates only the answer the client got, so a request sent up lacks the edge's
    rating and leaves the table: the share must come from every held-out logged request."""
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    rows = make_rows(96 + 300)[96:]
    prompts = [r["prompt"] for r in rows]
    chosen = RouterView.load(tiny_artifact).chosen(prompts)
    log = DecisionLog.open(LogSettings(url=url, text=True, flush_interval_s=0.01))
    for i, (text, up) in enumerate(zip(prompts, chosen, strict=True)):
        model = ["edge", "cloud"][up]
        log.record(entry(i, text=text, chosen_model=model, answering_model=model,
                         time=1e6 + i))
    assert log.flush(30)
    for i, (up, row) in enumerate(zip(chosen, rows, strict=True)):
        log.feedback(f"req-{i}", rating=1.0 if up else 1.0 - row["label"])
    log.close()
    report = gate(tiny_artifact, link_to(tmp_path, worse_artifact), url,
                  GateSettings(promote=False, bootstrap=50, min_rows=1))
    sent_up = float(np.mean(chosen[-report["log"]["test_period"]["requests"]:] > 0))
    assert report["scored_rows_cloud_share"] == 0.0  # only the edge-routed rows are complete
    assert report["current_cloud_share"] == pytest.approx(sent_up) and sent_up > 0.1
    assert f"({sent_up:.1%})" in " ".join(report["reasons"])
    assert "lack a rating of some model" in report["log"]["messages"][0]
