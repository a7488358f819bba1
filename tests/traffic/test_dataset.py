"""From the decision log to a labelled table and a router: ratings from judge verdicts and
feedback, the time split, rows without text counted with the fix, and `confroute train
--data.source <database URL>` on a real log."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from logged import entry, fill

from confroute.cli import main
from confroute.config import override
from confroute.dataset.schema import load
from confroute.errors import DataError
from confroute.traffic.dataset import LogTableSettings, log_table
from confroute.traffic.log import DecisionLog, LogSettings

from conftest import make_rows, tiny_config

PAIR = ["edge", "cloud"]
LADDER = ["small", "medium", "large"]


def open_log(url: str, text: bool = True) -> DecisionLog:
    return DecisionLog.open(LogSettings(url=url, text=text, flush_interval_s=0.01))


def test_ratings_from_verdicts_and_feedback_with_a_time_split(db_url: str) -> None:
    log = open_log(db_url)
    prompts = [f"prompt {i}" for i in range(10)]
    edge_right = np.arange(10) % 3 != 0
    fill(log, prompts, {"edge": edge_right, "cloud": np.ones(10, bool)}, PAIR)
    log.record(entry("fb-edge", request_id="fb-edge", text="thumbs on the edge", time=2e6))
    log.feedback("fb-edge", thumbs="down")  # edge rated 0, the unrated top model counts as 1
    log.record(entry("fb-cloud", request_id="fb-cloud", text="rated cloud", time=2e6 + 1,
                     chosen_model="cloud", answering_model="cloud"))
    log.feedback("fb-cloud", rating=0.8)  # edge unrated: incomplete
    log.close()
    frame, report = log_table(db_url)
    assert len(frame) == 11 and report["dropped"]["incomplete"] == 1
    by_id = frame.set_index("id")
    assert (by_id.loc["fb-edge", "edge"], by_id.loc["fb-edge", "cloud"]) == (0.0, 1.0)
    # a tie (both right) rates both 1; cloud wins where the edge was wrong
    assert by_id["rating_edge"].iloc[:10].tolist() == edge_right.astype(float).tolist()
    assert (by_id["rating_cloud"].iloc[:10] == 1.0).all()
    assert frame["split"].tolist() == ["train"] * 8 + ["test"] * 3  # the newest 20%, rounded up
    assert frame["time"].is_monotonic_increasing
    assert report["test_from_time"] == frame["time"].iloc[8]


def test_rows_without_text_are_counted_with_how_to_keep_text(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = open_log(sqlite_url, text=False)
    fill(log, ["a", "b", "c"], {"edge": [True] * 3, "cloud": [True] * 3}, PAIR)
    log.close()
    frame, report = log_table(sqlite_url)
    assert len(frame) == 0 and report["dropped"]["no_text"] == 3
    assert "log.text: true" in report["messages"][0]
    with pytest.raises(DataError, match="3 of the 3 requests with outcomes have no logged text"):
        load(override(tiny_config(Path("x"), Path("y")), {"data.source": sqlite_url}).data)
    assert main(["logs", "export", "--db", sqlite_url, "--out", str(tmp_path / "t.parquet")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("confroute logs: error: the decision log at sqlite:///")
    assert "log.text: true" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "t.parquet").exists()


def test_requests_of_another_ladder_are_left_out(sqlite_url: str) -> None:
    log = open_log(sqlite_url)
    fill(log, ["a", "b"], {m: [True, False] for m in LADDER}, LADDER)
    fill(log, ["c"], {m: [True] for m in PAIR}, PAIR, start=2e6)
    log.close()
    frame, report = log_table(sqlite_url, LogTableSettings(models=["large", "small", "medium"]))
    assert len(frame) == 2 and report["models"] == LADDER
    assert report["dropped"]["other_models"] == 1
    assert frame[LADDER].to_numpy().tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]


def test_logs_export_writes_the_table(sqlite_url: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    log = open_log(sqlite_url)
    fill(log, [f"p{i}" for i in range(5)], {"edge": [True, False] * 2 + [True],
                                            "cloud": [True] * 5}, PAIR)
    log.close()
    out = tmp_path / "log.jsonl"
    source = Path(sqlite_url.removeprefix("sqlite:///"))
    before = source.read_bytes()
    assert main(["logs", "export", "--db", sqlite_url, "--out", str(out),
                 "--test_fraction", "0.4"]) == 0
    assert source.read_bytes() == before  # opened read-only (WAL's -shm may appear beside it)
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == {"train": 3, "test": 2}
    assert [json.loads(line)["split"] for line in out.read_text().splitlines()] == \
        ["train"] * 3 + ["test"] * 2
    # a --since after every request says so (not "record outcomes"); a non-finite one is refused
    for since, message in [("2e9", "none has outcomes at or after --since 2000000000.0"),
                           ("1e400", "since must be a finite time"),
                           ("nan", "must be a number")]:
        assert main(["logs", "export", "--db", sqlite_url, "--out", str(tmp_path / "t.csv"),
                     "--since", since]) == 2
        assert message in capsys.readouterr().err, since
    assert not (tmp_path / "t.csv").exists()


def rows_and_outcomes(n: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """The toy prompts of conftest: the edge model is wrong exactly on the hard ones."""
    rows = make_rows(n)
    hard = np.array([r["label"] == 1.0 for r in rows])
    return [r["prompt"] for r in rows], {"edge": ~hard, "cloud": np.ones(n, bool)}


def test_train_from_a_database_url(sqlite_url: str, tiny_encoder_dir: Path,
                                   tmp_path: Path) -> None:
    from confroute.training.fit import fit

    log = open_log(sqlite_url)
    prompts, correct = rows_and_outcomes(96)
    fill(log, prompts, correct, PAIR)
    log.close()
    cfg = tiny_config(tiny_encoder_dir, Path("unused"), **{"data.source": sqlite_url})
    data = load(cfg.data)
    assert data.report["log"]["rows"] == {"train": 76, "test": 20}
    assert data.report["label_rule"] == "judge"  # ratings -> labels by the existing rules
    test = data.split("test")
    assert (test["label"].to_numpy() == (~correct["edge"][-20:]).astype(float)).all()
    result = fit(cfg, tmp_path / "run")
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["data_report"]["source"] == sqlite_url
    assert metrics["val_auroc"] > 0.5


def test_a_k_model_log_loads_as_ratings(sqlite_url: str, ladder_files) -> None:
    log = open_log(sqlite_url)
    prompts, pair = rows_and_outcomes(40)
    correct = {"small": pair["edge"], "medium": pair["edge"] | (np.arange(40) % 4 == 1),
               "large": np.arange(40) % 8 != 5}  # wrong where medium is right
    fill(log, prompts, correct, LADDER, chosen=["small", "large"] * 20)
    log.close()
    cfg = override(tiny_config(Path("x"), Path("y")), {
        "data.source": sqlite_url, "data.models": ["large", "small", "medium"],
        "data.prices": str(ladder_files[1])})
    data = load(cfg.data)
    assert data.models == LADDER and data.report["log"]["models"] == LADDER
    assert len(data.frame) == 40 and (data.split("test")["id"].str.endswith(
        tuple(f"-{i}" for i in range(32, 40)))).all()


@pytest.mark.parametrize("command", [
    ["logs", "export", "--out", "{tmp}/t.parquet"],
    ["gate", "--candidate", "{tmp}", "--served", "{tmp}/served"],
    ["drift", "--artifact", "{tmp}", "--out", "{tmp}/drift"],
])
@pytest.mark.parametrize("db, message", [
    ("sqlite:///{tmp}/typo.db", "no decision log at sqlite:///"),
    ("sqlite:///{tmp}/no/such/folder/log.db", "no decision log at"),
    ("runs/labels.parquet", "is not a database URL"),
    ("postgresql://me:s3cret@127.0.0.1:1/log", "cannot"),
])
def test_readers_answer_bad_logs_with_one_line(command: list[str], db: str, message: str,
                                               tmp_path: Path, tiny_artifact: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    import os

    os.symlink(tiny_artifact, tmp_path / "served")
    args = [a.format(tmp=tmp_path) for a in command] + ["--db", db.format(tmp=tmp_path)]
    if command[0] != "logs":
        args = [str(tiny_artifact) if a == str(tmp_path) else a for a in args]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert "s3cret" not in error
    assert not (tmp_path / "typo.db").exists()  # a reader never creates an empty log


def not_logs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Sources that are not a decision log, and what the readers say of each."""
    import sqlite3

    folder, empty, text, other = (tmp / f"{n}.db" for n in ("folder", "empty", "text", "other"))
    folder.mkdir()
    empty.write_bytes(b"")
    text.write_text("prompt,label\nhi,0\n")
    with contextlib.closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO runs VALUES (1, 'mlflow')")
    return {"folder": (folder, "is a folder, not a decision log"),
            "empty": (empty, "is an empty file, not a decision log"),
            "text": (text, "is not a SQLite database, not a decision log"),
            "other": (other, "is not a decision log (no table decisions, outcomes)")}


@pytest.mark.parametrize("command", [
    ["logs", "export", "--out", "{out}/t.parquet"],
    ["gate", "--candidate", "{artifact}", "--served", "{out}/served"],
    ["drift", "--artifact", "{artifact}", "--out", "{out}/drift"],
    ["train", "--out", "{out}/run", "--data.source"],
])
@pytest.mark.parametrize("kind", ["folder", "empty", "text", "other"])
def test_readers_refuse_a_source_that_is_not_a_log_and_leave_it_as_it_was(
        command: list[str], kind: str, tmp_path: Path, tiny_artifact: Path,
        capsys: pytest.CaptureFixture) -> None:
    """Export, gate, drift and train read a log and never write into it: a source that is not
    a decision log is refused with one line, its bytes unchanged and nothing made beside it
    (no migration creating the tables, no SQLite journal)."""
    import os

    sources = tmp_path / "sources"
    sources.mkdir()
    path, message = not_logs(sources)[kind]
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(tiny_artifact, out / "served")
    before = {p.name: p.read_bytes() if p.is_file() else None for p in sources.iterdir()}
    args = [a.format(out=out, artifact=tiny_artifact) for a in command]
    url = f"sqlite:///{path}"
    args += [url] if args[-1] == "--data.source" else ["--db", url]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert url in error, error  # the line names the source the user gave
    assert {p.name: p.read_bytes() if p.is_file() else None for p in sources.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["served"]
