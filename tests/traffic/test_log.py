"""The decision log as the service uses it: what a record keeps, feedback, implicit outcomes,
counts; on SQLite and a real PostgreSQL server."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from logged import ARTIFACT, entry, outcome_rows, rows

from confroute.dataset.ratings import Price
from confroute.errors import ConfigError, InputError
from confroute.traffic.log import DecisionLog, LogSettings
from confroute.traffic.records import text_hash

PRICES = {"edge": Price(0.1, 0.2), "cloud": Price(2.0, 8.0)}


def open_log(url: str, **settings: object) -> DecisionLog:
    return DecisionLog.open(LogSettings(url=url, flush_interval_s=0.01, **settings), PRICES)


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DecisionLog]:
    log = open_log(f"sqlite:///{tmp_path_factory.mktemp('log') / 'decisions.db'}")
    log.record(entry(1))
    yield log
    log.close()


def test_a_record_keeps_the_decision_and_only_the_hash_of_the_text(db_url: str) -> None:
    log = open_log(db_url)
    assert log.record(entry(1, fallbacks=[{"model": "edge", "error": "timeout"}],
                            answering_model="cloud", category="math"))
    assert log.flush()
    (row,) = rows(db_url)
    assert row["text"] is None and row["text_sha256"] == text_hash("What is 1 + 1?")
    assert row["text_chars"] == len("What is 1 + 1?")
    assert (row["artifact_id"], row["artifact_sha256"]) == (ARTIFACT.id, ARTIFACT.sha256)
    assert row["models"] == ["edge", "cloud"] and row["probabilities"] == {"edge": 0.75,
                                                                            "cloud": 1.0}
    assert (row["chosen_model"], row["answering_model"], row["category"]) == ("edge", "cloud",
                                                                              "math")
    # 10 prompt + 20 completion tokens at the answering model's (cloud) price: 2 and 8 USD/Mtok
    assert math.isclose(row["cost_usd"], (10 * 2.0 + 20 * 8.0) / 1e6)
    assert math.isclose(row["top_cost_usd"], row["cost_usd"])
    # the decision and its two implicit outcomes (the edge upstream's error, the fallback)
    assert log.stats()["written"] == 3 and log.stats()["pending"] == 0
    log.close()


def test_text_is_kept_only_when_asked_and_after_the_redaction_hook(db_url: str) -> None:
    log = open_log(db_url, text=True, redact="confroute.traffic.records:mask_secrets")
    log.record(entry(1, text="Mail ann@example.com the key sk-abcdefghijklmnopqrstuv"))
    log.record(entry(2))
    log.close()
    kept = {r["request_id"]: r["text"] for r in rows(db_url)}
    assert kept == {"req-1": "Mail *** the key sk-***", "req-2": "What is 2 + 2?"}


@pytest.mark.parametrize("settings, message", [
    ({"redact": "confroute.traffic.records:mask_secrets"}, "set log.text: true"),
    ({"text": True, "redact": "no.such.module:f"}, "cannot be imported"),
    ({"text": True, "redact": "confroute.traffic.records:MAX_ID"}, "is not a function"),
    ({"queue_size": 0}, "queue_size must be an integer >= 1"),
    ({"flush_interval_s": float("nan")}, "flush_interval_s must be a number"),
    ({"prices": "/no/such/prices.yaml"}, "log.prices: prices "),
])
def test_bad_settings_are_refused_naming_the_setting(sqlite_url: str, settings: dict,
                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DecisionLog.open(LogSettings(url=sqlite_url, **settings))  # type: ignore[arg-type]


def test_rows_are_committed_in_batches_and_a_request_id_is_stored_once(db_url: str) -> None:
    log = open_log(db_url, batch_size=10)
    for i in range(35):
        log.record(entry(i))
    log.record(entry(0))  # the same request again (e.g. a retried write): stored once
    log.close()
    stats = log.stats()
    assert len(rows(db_url)) == 35 and stats["written"] == 36 and stats["batches"] >= 4


def test_an_entry_that_cannot_be_stored_is_counted_not_raised(sqlite_url: str) -> None:
    log = open_log(sqlite_url)
    assert not log.record(entry(1, chosen_model="nobody"))
    assert not log.record(entry("x" * 65))
    assert log.record(entry(2))
    log.close()
    assert log.stats()["invalid"] == 2 and len(rows(sqlite_url)) == 1


def test_feedback_is_idempotent_per_request_and_source(db_url: str) -> None:
    log = open_log(db_url)
    log.record(entry(1))
    assert log.feedback("req-1", thumbs="down").status == "accepted"
    assert log.feedback("req-1", thumbs="up").status == "accepted"  # replaces the first
    assert log.feedback("req-1", rating=0.3, source="app.v2").status == "accepted"
    log.close()
    found = {(o["source"], o["rating"]) for o in outcome_rows(db_url) if o["kind"] == "feedback"}
    assert found == {("user", 1.0), ("app.v2", 0.3)}


@pytest.mark.parametrize("values, message", [
    ({"rating": 1.5}, "rating must be a number in"),
    ({"rating": float("nan")}, "rating must be a number in"),
    ({"rating": True}, "rating must be a number in"),
    ({"rating": "0.5"}, "rating must be a number in"),
    ({"rating": 0.5, "thumbs": "up"}, "exactly one of rating"),
    ({}, "exactly one of rating"),
    ({"thumbs": "sideways"}, "thumbs must be"),
    ({"thumbs": 1}, "thumbs must be"),
    ({"rating": 1, "source": "judge:edge:cloud"}, "source must name who rates"),
    ({"rating": 1, "source": "implicit:retry"}, "source must name who rates"),
    ({"rating": 1, "source": ""}, "source must name who rates"),
    ({"rating": 1, "source": "x" * 65}, "source must name who rates"),
    ({"rating": 1, "source": 7}, "source must name who rates"),
    ({"rating": 1, "request_id": "r" * 65}, "request_id must be"),
    ({"rating": 1, "request_id": 12}, "request_id must be"),
    ({"rating": 1, "request_id": ""}, "request_id must be"),
])
def test_feedback_values_are_validated(shared_log: DecisionLog, values: dict,
                                       message: str) -> None:
    request_id = values.pop("request_id", "req-1")
    with pytest.raises(InputError, match=message):
        shared_log.feedback(request_id, **values)


def test_feedback_on_unknown_ids_queued_ids_and_other_processes_ids(db_url: str) -> None:
    first = open_log(db_url)
    first.record(entry(1))
    assert first.feedback("req-1", rating=1.0).status == "accepted"  # still queued: in memory
    assert first.feedback("req-404", rating=1.0).status == "unknown"
    first.close()
    second = open_log(db_url)  # another proxy of the fleet: knows req-1 from the database only
    assert second.feedback("req-1", thumbs="up", source="other").status == "accepted"
    assert second.feedback("req-404", thumbs="up").status == "unknown"
    second.close()


def test_implicit_outcomes_errors_fallbacks_and_retries(db_url: str) -> None:
    log = open_log(db_url, retry_window_s=30)
    log.record(entry(1, time=1000.0, chosen_model="edge", answering_model="cloud",
                     fallbacks=[{"model": "edge", "error": "HTTP 503"}]))
    log.record(entry(2, text="What is 1 + 1?", time=1010.0))  # req-1's text again, 10 s later
    log.record(entry(3, text="What is 1 + 1?", time=1100.0))  # 90 s after req-2: no retry
    log.record(entry(4, text="Same", endpoint="route", time=1101.0))
    log.record(entry(5, text="Same", endpoint="route", time=1102.0))  # /v1/route: not a retry
    log.close()
    found = {(o["request_id"], o["source"], o["model"]) for o in outcome_rows(db_url)}
    assert found == {("req-1", "implicit:error:edge", "edge"),
                     ("req-1", "implicit:fallback", "edge"),
                     ("req-1", "implicit:retry", "cloud")}
    retry = next(o for o in outcome_rows(db_url) if o["kind"] == "retry")
    assert retry["detail"] == {"retried_by": "req-2", "after_s": 10.0}
    assert all(o["rating"] is None for o in outcome_rows(db_url))
