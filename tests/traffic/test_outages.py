"""The database stopped or locked under load: recording keeps accepting (it never waits for the
database), records wait in the bounded buffer and then are dropped and counted, the episode is
logged once, and writing resumes when the database is back, losing nothing it accepted."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

import pytest
from logged import entry, rows

from confroute.traffic.log import DecisionLog, LogSettings

QUEUE = 200


def settings(url: str) -> LogSettings:
    return LogSettings(url=url, queue_size=QUEUE, batch_size=50, flush_interval_s=0.01,
                       timeout_s=0.2)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "confroute.traffic"]


def check_accounting(log: DecisionLog, url: str, submitted: int) -> dict[str, float]:
    assert log.flush(60), log.stats()
    stats = log.stats()
    assert stats["written"] + stats["dropped"] == submitted
    assert len(rows(url)) == stats["written"]
    assert stats["healthy"] == 1.0 and stats["pending"] == 0
    return stats


def test_a_locked_sqlite_database_drops_and_counts_then_resumes(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "confroute.traffic")
    log = DecisionLog.open(settings(sqlite_url))
    log.record(entry("warm"))
    assert log.flush()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    # Were record() to wait for the database, this loop could never end: the lock is ours.
    for i in range(1000):
        log.record(entry(i))
    deadline = time.monotonic() + 10
    while log.stats()["failures"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    during = log.stats()
    holder.execute("ROLLBACK")
    holder.close()
    stats = check_accounting(log, sqlite_url, 1001)
    assert during["failures"] >= 1 and during["healthy"] == 0.0
    assert stats["dropped"] >= 1000 - QUEUE - 50  # queue plus the batch in hand were kept
    messages = warnings_of(caplog)
    assert sum("cannot write" in m for m in messages) == 1
    assert sum("buffer full" in m for m in messages) == 1
    assert sum("writing again" in m for m in messages) == 1
    log.close()


def test_postgresql_stopped_under_load(postgres, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "confroute.traffic")
    url = postgres.create_database()
    log = DecisionLog.open(settings(url))
    submitted = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal submitted
        while not stop.is_set():
            log.record(entry(submitted))
            submitted += 1
            time.sleep(0.0005)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.5)
        postgres.stop()
        time.sleep(2.0)  # long enough for the buffer to fill at this rate
        during = log.stats()
    finally:
        postgres.start()
    time.sleep(1.0)
    stop.set()
    thread.join()
    stats = check_accounting(log, url, submitted)
    assert during["healthy"] == 0.0 and during["dropped"] > 0
    assert stats["written"] > QUEUE and stats["dropped"] > 0
    messages = warnings_of(caplog)
    assert sum("cannot write" in m for m in messages) == 1
    assert sum("writing again" in m for m in messages) == 1
    log.close()


def test_a_database_down_at_start_is_written_once_it_answers(
        postgres, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "confroute.traffic")
    url = postgres.create_database()
    postgres.stop()
    try:
        log = DecisionLog.open(settings(url))  # serving must start: the log waits
        for i in range(100):
            assert log.record(entry(i))
        assert not log.flush(0.5)
    finally:
        postgres.start()
    stats = check_accounting(log, url, 100)
    assert stats["written"] == 100
    assert any("cannot be reached now" in m for m in warnings_of(caplog))
    log.close()
