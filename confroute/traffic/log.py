"""The decision log as the service uses it: record each request, take feedback, count.

    log = DecisionLog.open(LogSettings(url="sqlite:///decisions.db"), prices=router_prices)
    log.record(Entry(request_id, identity, text, models, chosen_model, ...))  # never blocks
    log.feedback(request_id, thumbs="up", source="user")   # FeedbackResult (may read the db)
    log.stats()     # numbers for /metrics
    log.close()

Threading model: `record` and `add_outcome` may be called from any thread or the event loop;
they build a row (microseconds), queue it and return, never waiting for the database and never
raising for a database problem. One background thread (`writer.Writer`) commits the queue in
batches. `feedback` validates, then checks that the request id is known: first among the ids
this process logged (queued or written), else with one read of the database (bounded by
`timeout_s`), so call it off the event loop (`afeedback` does that with `asyncio.to_thread`).
Implicit outcomes are derived here: each failed upstream and a fallback (from the entry), and
the same text sent again within `retry_window_s` (stored as an outcome of the earlier request).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal

from confroute.dataset.ratings import Price, parse_prices
from confroute.errors import ConfigError, ConfrouteError
from confroute.traffic import records, store
from confroute.traffic.records import Entry
from confroute.traffic.writer import OnWritten, Writer

LOG = logging.getLogger("confroute.traffic")
DEFAULT_URL = "sqlite:///confroute-decisions.db"


@dataclasses.dataclass
class LogSettings:
    """The decision log: where it is stored, what it keeps, how it writes."""

    enabled: bool = True
    """Record every routing decision (its outcomes too) in the database at `url`."""
    url: str = DEFAULT_URL
    """SQLAlchemy URL of the log: a SQLite file (the default, relative to the working directory)
    or a shared database for a fleet, e.g. postgresql://user@host/confroute (needs the
    postgresql extra); put a password in ~/.pgpass or PGPASSWORD rather than the URL."""
    text: bool = False
    """Keep the scored prompt text (needed to retrain from the log). Off: only its sha256 and
    length are kept, and nothing of the prompt leaves the request."""
    redact: str | None = None
    """With `text`: a function `module:name` (str -> str) applied to the text before it is kept,
    e.g. confroute.traffic.records:mask_secrets (API keys and e-mail addresses)."""
    prices: str | None = None
    """YAML/JSON file of each model's list price {model: {input_per_mtok, output_per_mtok}} (USD
    per million tokens) for the logged cost; default: the artifact's own prices (K-model
    artifacts), else no cost is logged."""
    queue_size: int = 10_000
    """Records held in memory while the database is slow or down; beyond this they are dropped
    (and counted)."""
    batch_size: int = 256
    """Most records committed in one transaction."""
    flush_interval_s: float = 0.2
    """Longest wait after a record arrives before its batch is committed (its acknowledgement
    delay)."""
    timeout_s: float = 5.0
    """Longest wait for a database connection (and for SQLite's write lock) per attempt."""
    retry_window_s: float = 60.0
    """The same text sent to /v1/chat/completions again within this many seconds is recorded as
    a retry of the earlier request (an implicit outcome); 0 = off."""
    recent_ids: int = 100_000
    """Request ids of this process remembered in memory, so feedback on them needs no read of
    the database."""

    def __post_init__(self) -> None:
        for name in ("queue_size", "batch_size", "recent_ids"):
            if isinstance(getattr(self, name), bool) or not getattr(self, name) >= 1:
                raise ConfigError(f"log.{name} must be an integer >= 1; found "
                                  f"{getattr(self, name)!r}")
        for name in ("flush_interval_s", "timeout_s", "retry_window_s"):
            value = getattr(self, name)
            if not 0 <= value < float("inf"):  # written so that NaN fails too
                raise ConfigError(f"log.{name} must be a number of seconds >= 0; found {value!r}")
        if self.redact and not self.text:
            raise ConfigError("log.redact applies to kept text; set log.text: true as well, or "
                              "remove log.redact")


FeedbackStatus = Literal["accepted", "unknown", "unavailable", "dropped"]


@dataclasses.dataclass(frozen=True)
class FeedbackResult:
    """What happened to a feedback report: `accepted` (queued: HTTP 200), `unknown` (no such
    request id: 404), `unavailable` (the id is not in memory and the database cannot be read
    now: 503) or `dropped` (the write queue is full: 503)."""

    status: FeedbackStatus
    message: str


class DecisionLog:
    """Records decisions and outcomes through a background writer (see the module docstring)."""

    def __init__(self, settings: LogSettings, engine: Any, prices: Mapping[str, Price],
                 on_written: OnWritten | None = None, migrated: bool = True) -> None:
        self.settings = settings
        self.engine = engine
        self.prices = dict(prices)
        self._keep_text = records.text_policy(settings.text, settings.redact)
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._retries: collections.OrderedDict[str, tuple[str, float, str | None]] = \
            collections.OrderedDict()
        self._lock = threading.Lock()
        self._invalid = 0
        self.writer = Writer(engine, settings.queue_size, settings.batch_size,
                             settings.flush_interval_s, on_written,
                             None if migrated else lambda: store.migrate(engine))

    @classmethod
    def open(cls, settings: LogSettings, prices: Mapping[str, Price] | None = None,
             on_written: OnWritten | None = None) -> DecisionLog:
        """Connect, migrate the schema and start the writer.

        `prices` (by model name) price the logged usage; `settings.prices` overrides them. A
        database that cannot be reached now is logged and migrated once it answers (requests
        are served meanwhile; records wait, then are dropped). Raises ConfigError for a bad URL
        or price file, DataError for a database written by a newer confroute, MissingExtraError
        for a missing driver.
        """
        from sqlalchemy import exc

        engine = store.connect(settings.url, settings.timeout_s)
        merged = dict(prices or {})
        if settings.prices:
            merged.update(_prices(settings.prices))
        try:
            store.migrate(engine)
            migrated = True
        except exc.OperationalError as error:
            LOG.warning("decision log: %s cannot be reached now (%s); serving goes on and the "
                        "log is written once it answers", store.shown(settings.url),
                        store.one_line_error(error))
            migrated = False
        return cls(settings, engine, merged, on_written, migrated)

    # --- recording ---------------------------------------------------------------------------

    def record(self, entry: Entry) -> bool:
        """Queue the decision and its implicit outcomes; False when it was not queued (queue
        full, or an entry that cannot be stored: counted as invalid and logged once)."""
        try:
            records.check_entry(entry)
            row = records.decision_row(entry, self._keep_text, self.prices)
        except (ConfrouteError, TypeError, ValueError, KeyError) as error:
            self._reject(entry, error)
            return False
        if not self.writer.put("decision", row):
            return False  # dropped: no outcome may refer to a request the log does not hold
        self._remember(entry.request_id)
        for outcome in records.implicit_rows(row):
            self.writer.put("outcome", outcome)
        if entry.endpoint == "chat" and self.settings.retry_window_s > 0:
            self._note_retry(row)
        return True

    def add_outcome(self, row: dict[str, Any]) -> bool:
        """Queue an outcome row (`records.outcome_row`); False when the queue is full."""
        return self.writer.put("outcome", row)

    def feedback(self, request_id: Any, rating: Any = None, thumbs: Any = None,
                 source: Any = "user") -> FeedbackResult:
        """Record feedback on a logged request (see `records.feedback_row` for the values).

        Idempotent per (request id, source): a repeated report replaces the earlier one.
        Raises InputError for invalid values (HTTP 422); may read the database once.
        """
        row = records.feedback_row(request_id, rating, thumbs, source)
        known = self.known(request_id)
        if known is None:
            return FeedbackResult("unavailable", "the decision log cannot be read now, so "
                                  f"request {request_id} cannot be checked; retry later")
        if not known:
            return FeedbackResult("unknown", f"no request {request_id} in the decision log; "
                                  "send the id from a response's x-confroute-request-id header")
        if not self.add_outcome(row):
            return FeedbackResult("dropped", "the decision log is not accepting records now "
                                  "(its database is slow or down); retry later")
        return FeedbackResult("accepted", f"feedback from {source} on {request_id} recorded")

    async def afeedback(self, request_id: Any, rating: Any = None, thumbs: Any = None,
                        source: Any = "user") -> FeedbackResult:
        """`feedback` in a worker thread, for the event loop."""
        return await asyncio.to_thread(self.feedback, request_id, rating, thumbs, source)

    def known(self, request_id: str) -> bool | None:
        """Whether `request_id` was logged: by this process (in memory), else in the database;
        None when it is not in memory and the database cannot be read."""
        from sqlalchemy import exc, select

        with self._lock:
            if request_id in self._recent:
                return True
        from confroute.traffic.schema import decisions

        try:
            with self.engine.connect() as conn:
                found = conn.execute(select(decisions.c.request_id).where(
                    decisions.c.request_id == request_id)).first()
        except exc.SQLAlchemyError:
            return None
        return found is not None

    # --- numbers and shutdown ----------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Counters for /metrics: records `queued`, `written` (committed: acknowledged),
        `dropped` (queue full), `rejected` (refused by the database), `lost` (unwritten
        at close), `invalid` (entries that could not be stored); `pending` (queued, not yet
        written); write `failures` and `batches`; `healthy` (1 unless the last write failed)."""
        with self.writer._lock:
            counts = dict(self.writer.counts)
        counts.setdefault("lost", 0)
        return {**{k: float(v) for k, v in counts.items()}, "invalid": float(self._invalid),
                "pending": float(self.writer.pending), "healthy": float(self.writer.healthy)}

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued record is written (True) or `timeout_s` passes (False)."""
        return self.writer.flush(timeout_s)

    def close(self, timeout_s: float = 5.0) -> int:
        """Write what is queued (up to `timeout_s`), stop the writer, release the database;
        returns the number of records left unwritten."""
        left = self.writer.close(timeout_s)
        self.engine.dispose()
        return left

    # --- internals ---------------------------------------------------------------------------

    def _remember(self, request_id: str) -> None:
        with self._lock:
            self._recent[request_id] = None
            while len(self._recent) > self.settings.recent_ids:
                self._recent.popitem(last=False)

    def _note_retry(self, row: dict[str, Any]) -> None:
        now, key = row["time"], row["text_sha256"]
        window = self.settings.retry_window_s
        with self._lock:
            earlier = self._retries.pop(key, None)
            self._retries[key] = (row["request_id"], now, row["answering_model"])
            while self._retries:  # the oldest first: drop those outside the window
                oldest = next(iter(self._retries.values()))
                if now - oldest[1] <= window and len(self._retries) <= self.settings.recent_ids:
                    break
                self._retries.popitem(last=False)
        if earlier and earlier[0] != row["request_id"] and 0 <= now - earlier[1] <= window:
            self.writer.put("outcome", records.retry_row(earlier[0], earlier[2],
                                                         row["request_id"], now - earlier[1]))

    def _reject(self, entry: Any, error: BaseException) -> None:
        with self._lock:
            self._invalid += 1
            first = self._invalid == 1
        if first:
            LOG.warning("decision log: an entry could not be recorded (%s); further ones are "
                        "counted as invalid without a log line", error)


def _prices(path: str) -> dict[str, Price]:
    try:
        return parse_prices(path)
    except ConfrouteError as error:
        raise ConfigError(f"log.prices: {error}") from error

