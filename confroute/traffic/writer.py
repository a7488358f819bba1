"""The decision log's writer: a bounded queue drained by one background thread in batches.

`put` never blocks and never raises: a row goes into the queue, or, when the queue is full
(the database is down or slower than the traffic), it is dropped and counted. The thread takes
up to `batch_size` rows, waiting at most `flush_interval_s` after the first, and commits them in
one transaction; only then are they counted as written and reported to `on_written` (the
acknowledgement: a row reported there survives kill -9 of the process). When a commit fails
because the database is unreachable or locked, the batch is kept and retried with back-off while
new rows wait in the queue, and the episode is logged once when it starts and once when writing
resumes (with the number of rows dropped meanwhile), never per row. A batch the database refuses
for its content is written row by row and the refused rows are counted as rejected, so one bad
row cannot stop the log.

Rows are idempotent: a decision whose request id is already stored is skipped, an outcome
replaces the stored one with the same (request id, source), so a batch retried after a commit
whose acknowledgement was lost writes nothing twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confroute.traffic import store
from confroute.traffic.schema import decisions, outcomes

LOG = logging.getLogger("confroute.traffic")
Item = tuple[str, dict[str, Any]]
"""("decision" | "outcome", row)."""
OnWritten = Callable[[list[tuple[str, str]]], None]
"""Called from the writer thread after each commit with the (kind, request id) of every row in
it; it must not block."""
UPDATED = ("kind", "time", "model", "rating", "verdict", "cost_usd", "detail")
MAX_BACKOFF_S = 2.0


COLLECT_NAP_S = 0.01
"""How long the writer sleeps between looks at the queue while it fills a batch."""


class Writer:
    """Writes queued rows to `engine` from one thread (see the module docstring).

    `ensure_schema` runs before the first write (and again after a failure until it succeeds),
    so a database unreachable at start is migrated when it comes up.
    """

    def __init__(self, engine: Any, queue_size: int, batch_size: int, flush_interval_s: float,
                 on_written: OnWritten | None = None,
                 ensure_schema: Callable[[], Any] | None = None) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_written = on_written
        self._ensure_schema = ensure_schema
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self.counts = {"queued": 0, "written": 0, "dropped": 0, "rejected": 0, "batches": 0,
                       "failures": 0}
        self._down_since: float | None = None
        self._dropping = False
        self._dropped_in_episode = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="confroute-log-writer",
                                        daemon=True)
        self._thread.start()

    # --- the caller's side -------------------------------------------------------------------

    def put(self, kind: str, row: dict[str, Any]) -> bool:
        """Queue one row; False (and counted as dropped) when the queue is full or closed."""
        if self._stop.is_set():
            self._count("dropped")
            return False
        try:
            self._queue.put_nowait((kind, row))
        except queue.Full:
            self._drop()
            return False
        self._count("queued")
        return True

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written or rejected."""
        with self._lock:
            c = self.counts
            return c["queued"] - c["written"] - c["rejected"] - c.get("lost", 0)

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful one."""
        return self._down_since is None

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued row is written (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self.pending > 0:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 5.0) -> int:
        """Stop accepting rows, write what is queued for up to `timeout_s`, stop the thread.

        Returns the number of rows left unwritten (counted as `lost`, and logged).
        """
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout=max(0.5, timeout_s / 5))
        left = self.pending
        if left:
            with self._lock:
                self.counts["lost"] = self.counts.get("lost", 0) + left
            LOG.warning("decision log: closed with %d record(s) not written to %s", left,
                        store.shown(str(self.engine.url)))
        return left

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[Item] = []
        backoff = 0.05
        while True:
            if not batch:
                batch = self._collect()
                if not batch:
                    if self._stop.is_set():
                        return
                    continue
            try:
                batch = self._write(batch)
            except Exception as exc:  # the thread must outlive any error: log it, retry
                self._failed(exc)
            if not batch:
                backoff = 0.05
                continue
            if self._stop.wait(backoff):
                return
            backoff = min(2 * backoff, MAX_BACKOFF_S)

    def _collect(self) -> list[Item]:
        try:
            first = self._queue.get(timeout=0.05)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush_interval_s
        # Take what is queued, then nap: a blocking get per row would wake this thread for
        # every request, and each wake takes the GIL from the threads serving requests.
        while True:
            try:
                while len(batch) < self.batch_size:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            wait = deadline - time.monotonic()
            if len(batch) >= self.batch_size or wait <= 0 or self._stop.is_set():
                return batch
            time.sleep(min(wait, COLLECT_NAP_S))

    def _write(self, batch: list[Item]) -> list[Item]:
        """Commit `batch`; returns the rows still to write (empty on success)."""
        from sqlalchemy import exc

        try:
            if self._ensure_schema is not None:
                self._ensure_schema()
                self._ensure_schema = None
            with self.engine.begin() as conn:
                insert_rows(conn, batch)
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError,
                exc.DisconnectionError) as error:
            self._failed(error)
            return batch
        except exc.SQLAlchemyError:
            return self._one_by_one(batch)
        self._acknowledge(batch)
        return []

    def _one_by_one(self, batch: list[Item]) -> list[Item]:
        from sqlalchemy import exc

        for i, item in enumerate(batch):
            try:
                with self.engine.begin() as conn:
                    insert_rows(conn, [item])
            except (exc.OperationalError, exc.InterfaceError) as error:
                self._failed(error)
                return batch[i:]
            except exc.SQLAlchemyError as error:
                self._count("rejected")
                LOG.warning("decision log: the database refused a %s row for request %s: %s",
                            item[0], item[1].get("request_id"), store.one_line_error(error))
                continue
            self._acknowledge([item])
        return []

    def _acknowledge(self, batch: list[Item]) -> None:
        with self._lock:
            self.counts["written"] += len(batch)
            self.counts["batches"] += 1
        if self._down_since is not None or (self._dropping and self._queue.qsize() <
                                            self._queue.maxsize // 2):
            down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
            LOG.warning("decision log: writing again%s; %d record(s) were dropped meanwhile",
                        f" after {down:.1f} s" if down else "", self._dropped_in_episode)
            self._down_since, self._dropping, self._dropped_in_episode = None, False, 0
        if self.on_written is not None:
            try:
                self.on_written([(kind, row["request_id"]) for kind, row in batch])
            except Exception:  # a broken callback must not stop the log
                LOG.exception("decision log: the on_written callback failed")

    def _failed(self, error: BaseException) -> None:
        self._count("failures")
        if self._down_since is None:
            self._down_since = time.monotonic()
            LOG.warning("decision log: cannot write to %s (%s); records wait in memory (up to "
                        "%d) and are dropped and counted when it is full; retrying",
                        store.shown(str(self.engine.url)), store.one_line_error(error),
                        self._queue.maxsize)

    def _drop(self) -> None:
        self._count("dropped")
        self._dropped_in_episode += 1
        if not self._dropping:
            self._dropping = True
            LOG.warning("decision log: buffer full (%d records); dropping records until the "
                        "database keeps up again", self._queue.maxsize)

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1


def insert_rows(conn: Any, items: list[Item]) -> None:
    """Insert decisions (skipping request ids already stored) and upsert outcomes (one per
    request id and source, the last given wins) in the connection's transaction."""
    found: dict[str, dict[Any, dict[str, Any]]] = {"decision": {}, "outcome": {}}
    for kind, row in items:  # one statement may not touch a key twice (PostgreSQL refuses)
        key = row["request_id"] if kind == "decision" else (row["request_id"], row["source"])
        if kind == "outcome" or key not in found[kind]:
            found[kind][key] = row
    if found["decision"]:
        _insert(conn, decisions, list(found["decision"].values()), ["request_id"])
    if found["outcome"]:
        _insert(conn, outcomes, list(found["outcome"].values()), ["request_id", "source"],
                UPDATED)


def _insert(conn: Any, table: Any, rows: list[dict[str, Any]], key: list[str],
            update: tuple[str, ...] = ()) -> None:
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        statement: Any = (sqlite if dialect == "sqlite" else postgresql).insert(table)
        statement = (statement.on_conflict_do_update(
            index_elements=key, set_={c: statement.excluded[c] for c in update}) if update
            else statement.on_conflict_do_nothing(index_elements=key))
        conn.execute(statement, rows)
        return
    _insert_generic(conn, table, rows, key, update)


def _insert_generic(conn: Any, table: Any, rows: list[dict[str, Any]], key: list[str],
                    update: tuple[str, ...]) -> None:
    """Other databases: the same effect with a read before the write (one proxy at a time)."""
    from sqlalchemy import and_, delete, select

    kept = []
    for row in rows:
        match = and_(*(table.c[k] == row[k] for k in key))
        if update:
            conn.execute(delete(table).where(match))
        elif conn.execute(select(table.c[key[0]]).where(match)).first() is not None:
            continue
        kept.append(row)
    if kept:
        conn.execute(table.insert(), kept)
